// Package proxytest starts icapd's proxy mode for tests, the way
// icapd.Main wires it, and serves origins for it to fetch from.
package proxytest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// TranscodeTimeout bounds one transcode in the pipelines Start builds.
const TranscodeTimeout = time.Minute

// Start starts what icapd.Main starts for the proxy: the measurement of
// cfg (its meter reporting to the in-process store or to cfg.Spand, its
// congestion manager unless cfg.ProxyNoCM), the pipeline with the
// repository's policy.toml, and the proxy on pcfg's address or listener.
// Everything logs to t and stops when the test ends.
func Start(t testing.TB, cfg icapd.Config, pcfg icapd.ProxyConfig) (*icapd.Measurement, *url.URL) {
	t.Helper()
	logger := Logger(t)
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
	// A loaded 2-core machine, or -race, can take longer than the
	// default 5 s for one image; a timeout would pass the original and
	// fail a test about adaptation for the wrong reason.
	pl.Transcoder.T.Limits.Timeout = TranscodeTimeout
	pcfg.Manager, pcfg.Meter = ms.Manager, ms.Meter
	ps, err := icapd.StartProxy(pcfg, pl, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ps.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
	})
	return ms, &url.URL{Scheme: "http", Host: ps.Addr()}
}

// Object is what an Origin serves at a path.
type Object struct {
	Type string // Content-Type
	Body []byte
}

// Origin serves objs by URL path (404 for others) on loopback until the
// test ends.
func Origin(t testing.TB, objs map[string]Object) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, ok := objs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", o.Type)
		w.Write(o.Body)
	}))
	t.Cleanup(s.Close)
	return s
}

// Logger returns a logger writing to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, nil))
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
