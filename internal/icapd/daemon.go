package icapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// Daemon is a running icapd: the ICAP server (plain and/or TLS) behind the
// client allow-list, the services, the access log, the metrics and the
// admin HTTP server. Create it with New, then Start; stop it with Shutdown.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	access *accessLog // nil when the access log is off
	closer io.Closer  // the access log file, if any

	// Metrics are the daemon's counters, also served on /metrics.
	Metrics *Metrics
	// Mux routes ICAP requests to the services; Handle replaces them.
	Mux *icap.ServeMux
	// Server is the ICAP server; its hooks (ConnState, Observer) are the
	// daemon's.
	Server *icap.Server

	mu       sync.Mutex                                // serialises Handle
	known    atomic.Pointer[map[string]*serviceSeries] // registered service paths and their metrics
	other    *serviceSeries                            // the metrics of unknown services
	draining atomic.Bool
	pipeline atomic.Pointer[Pipeline] // shown on the admin page (admin.go)
	admin    *http.Server
	icapLn   net.Listener
	tlsLn    net.Listener
	adminLn  net.Listener
	wg       sync.WaitGroup
	errc     chan error // a listener that stopped for a reason other than shutdown
}

// New builds a daemon from cfg; logger receives the daemon's own log (nil
// means slog.Default). The access log goes where cfg.AccessLog says.
func New(cfg Config, logger *slog.Logger, services ...Service) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &Daemon{cfg: cfg, log: logger, Metrics: NewMetrics(), Mux: icap.NewServeMux(), errc: make(chan error, 3)}
	d.other = d.Metrics.serviceSeries("other")
	switch cfg.AccessLog {
	case "off":
	case "", "-":
		w := newLogWriter(os.Stderr, nil, DefaultLogFlushInterval)
		d.closer = w
		d.access = newAccessLog(w)
	default:
		f, err := openLogFile(cfg.AccessLog, DefaultLogFlushInterval)
		if err != nil {
			return nil, err
		}
		d.closer = f
		d.access = newAccessLog(f)
	}
	if services == nil {
		services = DefaultServices()
	}
	for _, s := range services {
		d.Handle(s)
	}
	d.Server = &icap.Server{
		Handler:   d.Mux,
		Logger:    logger,
		ConnState: d.connState,
		Observer:  d.observe,
	}
	return d, nil
}

// Handle registers s, replacing the service with the same path; it may be
// called while serving (the adaptation pipeline plugs in this way).
func (d *Daemon) Handle(s Service) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !strings.HasPrefix(s.Path, "/") {
		s.Path = "/" + s.Path
	}
	d.Mux.Handle(s.Path, s.Handler, s.Options)
	known := make(map[string]*serviceSeries)
	for _, p := range d.Mux.Paths() {
		known[p] = d.Metrics.serviceSeries(p)
	}
	d.known.Store(&known)
}

func (d *Daemon) connState(_ net.Conn, st icap.ConnState) {
	switch st {
	case icap.StateNew:
		d.Metrics.ConnOpened()
	case icap.StateClosed:
		d.Metrics.ConnClosed()
	}
}

// observe records a finished transaction in the metrics and the access
// log. Label values are bounded: unknown services and methods are counted
// as "other", so a client cannot grow the metrics without limit.
func (d *Daemon) observe(ti *icap.TransactionInfo) {
	ss := (*d.known.Load())[ti.Service]
	if ss == nil {
		ss = d.other
	}
	ss.of(ti.Method).observe(ti.Status, ti.BytesIn, ti.BytesOut, ti.Duration)
	if d.access == nil {
		return
	}
	end := ti.Start.Add(ti.Duration) // the server's clock: no second time.Now
	if ti.Start.IsZero() {
		end = time.Now()
	}
	d.access.log(end, ti)
}

// Start binds the listeners and serves in the background. Binding errors
// are returned; anything after that is reported by Wait.
func (d *Daemon) Start() error {
	cfg := d.cfg
	allow := cfg.allow()
	wrap := func(ln net.Listener) net.Listener {
		return &allowListener{Listener: ln, allow: allow, log: d.log, refused: d.Metrics.ConnRefused}
	}
	if cfg.ListenTLS != "" {
		// Load the key pair now, so that a bad file stops Start.
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("ICAPS certificate: %w", err)
		}
		d.Server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.listen() != "off" {
		ln, err := net.Listen("tcp", cfg.listen())
		if err != nil {
			return fmt.Errorf("ICAP listener: %w", err)
		}
		d.icapLn = wrap(ln)
		d.warnExposed("-listen", cfg.listen())
	}
	if cfg.ListenTLS != "" {
		ln, err := net.Listen("tcp", cfg.ListenTLS)
		if err != nil {
			d.closeListeners()
			return fmt.Errorf("ICAPS listener: %w", err)
		}
		d.tlsLn = wrap(ln)
		d.warnExposed("-listen-tls", cfg.ListenTLS)
	}
	if cfg.admin() != "off" {
		ln, err := net.Listen("tcp", cfg.admin())
		if err != nil {
			d.closeListeners()
			return fmt.Errorf("admin listener: %w", err)
		}
		d.adminLn = ln
		if !isLoopbackListen(cfg.admin()) {
			d.log.Warn("the admin server (metrics, pprof) listens on a non-loopback address", "admin", cfg.admin())
		}
		d.admin = &http.Server{
			Handler:           d.adminHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		}
	}
	serve := func(name string, f func() error) {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			err := f()
			if err != nil && !errors.Is(err, icap.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
				d.errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if d.icapLn != nil {
		serve("ICAP", func() error { return d.Server.Serve(d.icapLn) })
	}
	if d.tlsLn != nil {
		serve("ICAPS", func() error { return d.Server.ServeTLS(d.tlsLn, "", "") })
	}
	if d.adminLn != nil {
		serve("admin", func() error { return d.admin.Serve(d.adminLn) })
	}
	d.log.Info("icapd started", "icap", addrOf(d.icapLn), "icaps", addrOf(d.tlsLn), "admin", addrOf(d.adminLn),
		"allow", prefixesString(allow), "services", strings.Join(d.Mux.Paths(), ","))
	return nil
}

// warnExposed warns when an ICAP listener binds a non-loopback address
// and no allow-list was given: only loopback clients will be admitted,
// which is probably not what the operator meant.
func (d *Daemon) warnExposed(flag, addr string) {
	if isLoopbackListen(addr) || d.cfg.AllowSet {
		return
	}
	d.log.Warn("ICAP listener binds a non-loopback address without -allow: only loopback clients are admitted; pass -allow with the CIDRs of your ICAP clients (e.g. your Squid hosts)",
		"flag", flag, "addr", addr, "allow", prefixesString(d.cfg.allow()))
}

// ICAPAddr, TLSAddr and AdminAddr return the bound addresses ("" if off).
func (d *Daemon) ICAPAddr() string { return addrOf(d.icapLn) }

// TLSAddr returns the ICAPS address, "" if off.
func (d *Daemon) TLSAddr() string { return addrOf(d.tlsLn) }

// AdminAddr returns the admin HTTP address, "" if off.
func (d *Daemon) AdminAddr() string { return addrOf(d.adminLn) }

// Errors reports a listener that failed while serving.
func (d *Daemon) Errors() <-chan error { return d.errc }

// Shutdown stops accepting, reports unhealthy on /healthz, lets in-flight
// transactions finish until ctx is done (then closes them), stops the
// admin server and flushes the access log.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.draining.Store(true)
	start := time.Now()
	err := d.Server.Shutdown(ctx)
	if err != nil {
		d.log.Warn("in-flight transactions did not finish in time; closing them", "err", err, "open", d.Server.NumConns())
		d.Server.Close()
	}
	if d.admin != nil {
		actx, cancel := context.WithTimeout(context.Background(), time.Second)
		d.admin.Shutdown(actx)
		cancel()
	}
	d.wg.Wait()
	if d.closer != nil {
		if cerr := d.closer.Close(); err == nil {
			err = cerr
		}
	}
	d.log.Info("icapd stopped", "took", time.Since(start).Round(time.Millisecond))
	return err
}

func (d *Daemon) closeListeners() {
	for _, ln := range []net.Listener{d.icapLn, d.tlsLn, d.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func prefixesString(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
