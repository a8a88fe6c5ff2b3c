package icapd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/internal/proxy"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
)

// DefaultSnapshotInterval is how often the in-process store is saved to
// Config.StoreSnapshot (and at shutdown).
const DefaultSnapshotInterval = time.Minute

// checkSpandURL checks a -spand value.
func checkSpandURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-spand %q: want an http:// or https:// URL", s)
	}
	return nil
}

// Measurement is where icapd learns how fast its clients are, and where
// the proxy's own measurements go:
//
//   - the measurement store: the spand daemon (-spand URL), asked through
//     a spand.Client and sent reports through a spand.Reporter, else an
//     in-process spand.MemoryStore (saved to -store-snapshot);
//   - in proxy mode, the congestion manager gating the writes to the
//     clients (unless -proxy-cm=false) and the meter that turns every
//     client connection into performance reports for the store (the
//     proxy as a SPAND "modified client").
//
// Predictor is what the policy asks, for the ICAP services and the proxy
// alike: the client's live macroflow first (adapt.CM), then the store
// (adapt.Spand).
type Measurement struct {
	// Store is the in-process store; nil with -spand.
	Store *spand.MemoryStore
	// Client and Reporter talk to the spand daemon; nil without -spand.
	Client   *spand.Client
	Reporter *spand.Reporter
	// Manager and Meter serve the proxy; nil without it (Manager also
	// with -proxy-cm=false).
	Manager *congestion.Manager
	Meter   *proxy.Meter
	// Predictor answers the policy: adapt.Chain{CM, Spand}.
	Predictor policy.Predictor

	spand *adapt.Spand
	log   *slog.Logger
}

// NewMeasurement builds the measurement side of cfg.
func NewMeasurement(cfg Config, logger *slog.Logger) (*Measurement, error) {
	if logger == nil {
		logger = slog.Default()
	}
	ms := &Measurement{log: logger}
	var src adapt.PredictionSource
	var sink proxy.ReportSink
	if cfg.Spand != "" {
		if err := checkSpandURL(cfg.Spand); err != nil {
			return nil, err
		}
		ms.Client = &spand.Client{BaseURL: cfg.Spand}
		ms.Reporter = &spand.Reporter{Client: ms.Client, Logger: logger}
		src, sink = ms.Client, proxy.ReporterSink{R: ms.Reporter}
	} else {
		// The proxy's clients are LAN hosts: a client with no reports of
		// its own gets no answer rather than the proxy's /24 (spand.Config.Local).
		st, err := spand.NewMemoryStore(spand.Config{Local: spand.LocalPrefixes()}, cfg.StoreSnapshot)
		if err != nil {
			return nil, fmt.Errorf("measurement store: %w", err)
		}
		ms.Store = st
		src, sink = st, st
	}
	if cfg.proxy() != "off" {
		ms.Meter = &proxy.Meter{Sink: sink, Logger: logger}
		src = adapt.ExceptOwnPrefix{Source: src, Own: ms.Meter.Own}
	}
	ms.spand = &adapt.Spand{Source: src, Logger: logger}
	chain := adapt.Chain{ms.spand}
	if ms.Meter != nil {
		if !cfg.ProxyNoCM {
			ms.Manager = NewProxyManager(logger)
			chain = adapt.Chain{&adapt.CM{Manager: ms.Manager, Activity: ms.Meter}, ms.spand}
		}
	}
	ms.Predictor = chain
	return ms, nil
}

// NewProxyManager returns the congestion manager of the proxy's client
// connections: one macroflow per client address, AIMD with window
// validation (RFC 7661), since the kernel's own controller, not the
// macroflow's window, often limits a client connection, and an
// unvalidated window would make Query report far more than the path
// carries.
func NewProxyManager(logger *slog.Logger) *congestion.Manager {
	return congestion.NewManager(congestion.Config{
		NewController: func(c congestion.ControllerConfig) congestion.Controller {
			return congestion.ValidateWindow(congestion.NewAIMD(c), c.MSS)
		},
	})
}

// Run sends the meter's interim reports, the reporter's batches and the
// store's snapshots until ctx is done; then the reporter sends what is
// left.
func (ms *Measurement) Run(ctx context.Context) {
	if ms.Meter != nil {
		go ms.Meter.Run(ctx)
	}
	if ms.Store != nil {
		go ms.Store.RunSnapshots(ctx, DefaultSnapshotInterval, ms.log)
	}
	if ms.Reporter != nil {
		ms.Reporter.Run(ctx) // flushes once more when ctx ends
	}
}

// Close saves the store's snapshot and closes the congestion manager's
// flows.
func (ms *Measurement) Close() error {
	var err error
	if ms.Store != nil {
		err = ms.Store.Close()
	}
	if ms.Manager != nil {
		ms.Manager.Close()
	}
	return err
}

// Source names the store for the log: the spand URL or "in-process".
func (ms *Measurement) Source() string {
	if ms.Client != nil {
		return ms.Client.BaseURL
	}
	return "in-process"
}

// WriteMetrics writes the measurement's metrics in the Prometheus text
// format: failed predictions, the proxy's reports, and the in-process
// store's own counters.
func (ms *Measurement) WriteMetrics(w io.Writer) error {
	var b strings.Builder
	promtext.Value(&b, "icapd_spand_predict_failures_total", "counter", "Bandwidth predictions from spand that failed or timed out.", ms.spand.Failures())
	if ms.Meter != nil {
		sent, failed := ms.Meter.Stats()
		promtext.Header(&b, "icapd_proxy_reports_total", "counter", "Performance reports the proxy made of its client connections, by result.")
		fmt.Fprintf(&b, "icapd_proxy_reports_total{result=\"ok\"} %d\nicapd_proxy_reports_total{result=\"error\"} %d\n", sent, failed)
	}
	if ms.Manager != nil {
		promtext.Value(&b, "icapd_proxy_macroflows", "gauge", "Macroflows (client hosts) the proxy's congestion manager keeps.", ms.Manager.Macroflows())
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if ms.Store != nil {
		ms.Store.Metrics(w)
	}
	return nil
}
