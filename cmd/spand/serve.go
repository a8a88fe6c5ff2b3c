package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/redisstore"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// aggFlags are the aggregation settings shared by -serve and eval.
type aggFlags struct {
	local      string
	halfLife   time.Duration
	maxAge     time.Duration
	maxKeys    int
	maxSamples int
	localPfx   bool
}

func (a *aggFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.local, "local", "", "comma-separated `PREFIXES` of the LAN side (default: RFC 1918, 100.64/10, ULA, link-local, loopback)")
	fs.DurationVar(&a.halfLife, "half-life", spand.DefaultHalfLife, "age at which a report weighs half")
	fs.DurationVar(&a.maxAge, "max-age", spand.DefaultMaxAge, "age past which reports are dropped")
	fs.IntVar(&a.maxKeys, "max-keys", spand.DefaultMaxKeys, "keys per table (remote host, local host, remote prefix, local prefix); LRU beyond")
	fs.IntVar(&a.maxSamples, "max-samples", spand.DefaultMaxSamples, "reports kept per key")
	fs.BoolVar(&a.localPfx, "local-prefix", false, "also aggregate by the local /24 or /64 and answer a LAN client with no reports of its own from it")
}

func (a *aggFlags) config() spand.Config {
	return spand.Config{HalfLife: a.halfLife, MaxAge: a.maxAge, MaxKeys: a.maxKeys, MaxSamples: a.maxSamples, LocalPrefixes: a.localPfx}
}

func (a *aggFlags) localFunc() (spand.LocalFunc, error) {
	ps, err := spand.ParsePrefixes(a.local)
	if err != nil {
		return nil, fmt.Errorf("-local: %w", err)
	}
	return spand.LocalPrefixes(ps...), nil
}

// serveFlags are the flags of the performance server.
type serveFlags struct {
	agg           aggFlags
	snapshot      string
	snapshotEvery time.Duration
	redis         string
	redisPrefix   string
	tokenFile     string
	maxBatch      int
	maxBody       int64
	rateLimit     float64
	rateBurst     int
}

var serveOpts serveFlags

func (s *serveFlags) register(fs *flag.FlagSet) {
	s.agg.register(fs)
	fs.StringVar(&s.snapshot, "snapshot", "", "keep what was learned in `FILE` across restarts (memory store)")
	fs.DurationVar(&s.snapshotEvery, "snapshot-every", time.Minute, "interval of snapshots")
	fs.StringVar(&s.redis, "redis", "", "share reports through Redis at `HOST:PORT` instead of the memory store")
	fs.StringVar(&s.redisPrefix, "redis-prefix", redisstore.DefaultPrefix, "Redis key prefix")
	fs.StringVar(&s.tokenFile, "token-file", "", "require the bearer token in `FILE` for POST /v1/reports (or set SPAND_TOKEN)")
	fs.IntVar(&s.maxBatch, "max-batch", spand.DefaultMaxBatch, "reports per POST")
	fs.Int64Var(&s.maxBody, "max-body", spand.DefaultMaxBodyBytes, "bytes per POST body")
	fs.Float64Var(&s.rateLimit, "rate-limit", spand.DefaultRateLimit, "reports per second per reporter (negative: unlimited)")
	fs.IntVar(&s.rateBurst, "rate-burst", spand.DefaultRateBurst, "reports a reporter may send at once")
}

func init() {
	flagHooks = append(flagHooks, serveOpts.register)
	serveHook = func(ctx context.Context, addr string, capture CaptureFunc) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("-serve: %w", err)
		}
		return serve(ctx, ln, capture, &serveOpts, slog.Default())
	}
}

// openStore builds the store the flags ask for.
func (s *serveFlags) openStore(log *slog.Logger) (spand.Store, error) {
	cfg := s.agg.config()
	local, err := s.agg.localFunc()
	if err != nil {
		return nil, err
	}
	cfg.Local = local // predictions for LAN clients fall back to their local prefix
	if s.redis != "" {
		if s.snapshot != "" {
			return nil, errors.New("-snapshot and -redis exclude each other: Redis is the persistent store")
		}
		return redisstore.New(redisstore.Options{Addr: s.redis, Prefix: s.redisPrefix, Config: cfg, Logger: log})
	}
	return spand.NewMemoryStore(cfg, s.snapshot)
}

func (s *serveFlags) token() (string, error) {
	if s.tokenFile != "" {
		b, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return "", fmt.Errorf("-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("-token-file %s is empty", s.tokenFile)
		}
		return tok, nil
	}
	return os.Getenv("SPAND_TOKEN"), nil
}

// serve runs the performance server on ln until ctx is done, fed by
// capture when it is not nil, then shuts down gracefully and closes the
// store (which writes the snapshot or the Redis queue).
func serve(ctx context.Context, ln net.Listener, capture CaptureFunc, o *serveFlags, log *slog.Logger) error {
	local, err := o.agg.localFunc()
	if err != nil {
		ln.Close()
		return err
	}
	tok, err := o.token()
	if err != nil {
		ln.Close()
		return err
	}
	store, err := o.openStore(log)
	if err != nil {
		ln.Close()
		return err
	}
	var conns, reports atomic.Uint64
	srv := &spand.Server{
		Store: store, Token: tok, Logger: log,
		MaxBatch: o.maxBatch, MaxBodyBytes: o.maxBody, RateLimit: o.rateLimit, RateBurst: o.rateBurst,
		ExtraMetrics: func(w io.Writer) {
			promtext.Value(w, "spand_capture_conns_total", "counter", "Connection records from the capture.", conns.Load())
			promtext.Value(w, "spand_capture_reports_total", "counter", "Reports made from captured connections.", reports.Load())
			writeCaptureMetrics(w) // packets, kernel drops, connection table (live.go)
			writeForwardMetrics(w) // -report-to (forward.go)
		},
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- hs.Serve(ln) }()
	if ms, ok := store.(*spand.MemoryStore); ok {
		go ms.RunSnapshots(ctx, o.snapshotEvery, log)
	}
	if capture != nil {
		go func() {
			err := capture(ctx, func(c *track.Conn) {
				conns.Add(1)
				if r, ok := spand.ReportFromConn(c, local); ok {
					reports.Add(1)
					if err := store.Add(ctx, []spand.Report{r}); err != nil {
						log.Warn("spand: report not stored", "err", err)
					}
				}
			})
			if err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("capture: %w", err)
			}
		}()
	}
	log.Info("spand: performance server listening", "addr", ln.Addr().String(), "capture", capture != nil, "auth", tok != "")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil && runErr == nil {
		runErr = err
	}
	if err := store.Close(); err != nil {
		log.Error("spand: closing the store", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}
