package icapd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Main is icapd's command line: it parses args, starts the daemon and runs
// it until SIGTERM or SIGINT (or ctx is done), then shuts down gracefully:
// stop accepting, let in-flight transactions finish within
// -shutdown-timeout, exit. SIGHUP reloads the policy (Pipeline.Reload).
// It returns the exit status: 0 after a clean shutdown, 2 for bad flags, 1 otherwise.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "icapd: %v\n", err)
		return 2
	}
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel))) // validated by ParseFlags
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	gogc, gomemlimit := cfg.applyGC(os.Getenv)
	logger.Debug("garbage collector", "gogc", gogc, "gomemlimit", gomemlimit)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := New(cfg, logger)
	if err != nil {
		logger.Error("icapd: configuration", "err", err)
		return 1
	}
	ms, err := NewMeasurement(cfg, logger)
	if err != nil {
		logger.Error("icapd: measurement", "err", err)
		return 1
	}
	defer func() {
		if err := ms.Close(); err != nil {
			logger.Error("icapd: measurement store", "err", err)
		}
	}()
	pl, err := NewPipeline(PipelineConfig{PolicyFile: cfg.Policy, Spand: cfg.Spand, Predictor: ms.Predictor, MaxTranscodeBytes: cfg.MaxTranscodeBytes, EarlyCommitBytes: cfg.EarlyCommitBytes, EarlyHoldBytes: cfg.EarlyHoldBytes, TranscodeTimeout: cfg.TranscodeTimeout}, logger)
	if err != nil {
		logger.Error("icapd: policy", "err", err)
		return 1
	}
	defer pl.Close()
	pl.Install(d)
	d.Metrics.AddWriter(ms.WriteMetrics)
	go pl.Watch(ctx)
	mctx, stopMeasure := context.WithCancel(context.Background())
	measured := make(chan struct{})
	go func() { defer close(measured); ms.Run(mctx) }()
	defer func() { stopMeasure(); <-measured }()
	logger.Info("measurement", "store", ms.Source(), "snapshot", cfg.StoreSnapshot)
	if err := d.Start(); err != nil {
		logger.Error("icapd: start", "err", err)
		return 1
	}
	ps, err := startProxyOf(cfg, pl, ms, logger)
	if err != nil {
		logger.Error("icapd: start", "err", err)
		d.Shutdown(context.Background())
		return 1
	}
	if ps != nil {
		d.Metrics.AddWriter(ps.WriteMetrics)
	}
	status := 0
	for running := true; running; {
		select {
		case <-ctx.Done():
			logger.Info("icapd: signal received; shutting down", "timeout", cfg.shutdownTimeout())
			running = false
		case err := <-d.Errors():
			logger.Error("icapd: listener failed; shutting down", "err", err)
			status, running = 1, false
		case <-hup:
			logger.Info("icapd: SIGHUP received; reloading the policy")
			pl.Reload() // a bad file is logged and the old policy kept
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout())
	defer cancel()
	if ps != nil {
		if err := ps.Shutdown(sctx); err != nil {
			logger.Warn("icapd: proxy requests did not finish in time; closed them", "err", err)
		}
	}
	if err := d.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// A deadline cut is the configured policy (logged by Shutdown);
		// anything else, such as an unflushable access log, is a failure.
		logger.Error("icapd: shutdown", "err", err)
		return 1
	}
	return status
}
