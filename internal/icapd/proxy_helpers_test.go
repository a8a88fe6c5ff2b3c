package icapd_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// startTestProxy starts what icapd.Main starts for the proxy: the
// measurement of cfg (its meter reporting to the in-process store, its
// congestion manager unless cfg.ProxyNoCM), the pipeline with the
// repository's policy, and the proxy on pcfg's address or listener. All
// stop when the test ends.
func startTestProxy(t testing.TB, cfg icapd.Config, pcfg icapd.ProxyConfig) (*icapd.Measurement, *url.URL) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(tlog{t}, nil))
	ms, err := icapd.NewMeasurement(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ms.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ms.Close()
	})
	pl, err := icapd.NewPipeline(icapd.PipelineConfig{PolicyFile: filepath.Join(testenv.ModuleRoot(t), "policy.toml"), Predictor: ms.Predictor}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	pcfg.Manager, pcfg.Meter = ms.Manager, ms.Meter
	ps, err := icapd.StartProxy(pcfg, pl, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ps.Shutdown(ctx); err != nil {
			t.Logf("proxy shutdown: %v", err)
		}
	})
	return ms, &url.URL{Scheme: "http", Host: ps.Addr()}
}

// tlog writes log lines to the test's log.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
