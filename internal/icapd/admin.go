package icapd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/dashboard"
	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Defaults of the admin page (GET /).
const (
	// DefaultAdminHosts is how many measured hosts the page lists, each
	// with a chart (?hosts=N changes it, up to spand.MaxHistoryKeys).
	DefaultAdminHosts = 50
	// DefaultAdminRefresh is how often the page reloads itself
	// (?refresh=S seconds; 0 turns it off).
	DefaultAdminRefresh = dashboard.DefaultRefresh
	// DefaultAdminSourceTimeout bounds the reads of the measurement
	// source (spand over HTTP, or the in-process store) for one page; a
	// slow spand makes the page say so rather than hang.
	DefaultAdminSourceTimeout = 2 * time.Second
)

// adminHandler serves the admin endpoints:
//
//	/              the dashboard: measured client hosts with bandwidth, RTT
//	               and history, bytes saved per content type, rule hits
//	/metrics       Prometheus text format (see Metrics)
//	/healthz       200 "ok" while serving, 503 "shutting down" after SIGTERM
//	/debug/pprof/  the Go profiler (the admin address is loopback by default)
func (d *Daemon) adminHandler() http.Handler {
	m, draining := d.Metrics, &d.draining
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", dashboard.Handler(d.adminPage, d.log))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.WriteTo(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("shutting down\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// attachPipeline shows pl on the admin page and adds its savings counters
// to /metrics; Pipeline.Install calls it.
func (d *Daemon) attachPipeline(pl *Pipeline) {
	if d.pipeline.Swap(pl) == nil {
		d.Metrics.AddWriter(func(w io.Writer) error {
			if pl := d.pipeline.Load(); pl != nil {
				return pl.writeSavingsMetrics(w)
			}
			return nil
		})
	}
}

// writeSavingsMetrics writes the bytes in and out of adapted bodies per
// media type:
//
//	icapd_adapt_bodies_total{content_type="image/jpeg"} 12
//	icapd_adapt_bytes_in_total{content_type="image/jpeg"} 1.2e6
//	icapd_adapt_bytes_out_total{content_type="image/jpeg"} 3.1e5
func (pl *Pipeline) writeSavingsMetrics(w io.Writer) error {
	sv := pl.Transcoder.Savings()
	var b strings.Builder
	for _, f := range []struct {
		name, help string
		v          func(i int) int64
	}{
		{"icapd_adapt_bodies_total", "Response bodies replaced by a transcoded one, by the original's media type.", func(i int) int64 { return sv[i].Bodies }},
		{"icapd_adapt_bytes_in_total", "Original bytes of the transcoded bodies, by media type.", func(i int) int64 { return sv[i].BytesIn }},
		{"icapd_adapt_bytes_out_total", "Bytes of the transcoded bodies sent instead, by the original's media type.", func(i int) int64 { return sv[i].BytesOut }},
	} {
		promtext.Header(&b, f.name, "counter", f.help)
		for i := range sv {
			fmt.Fprintf(&b, "%s{content_type=%q} %d\n", f.name, sv[i].MediaType, f.v(i))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// adminPage builds the dashboard from the daemon's metrics and, when the
// pipeline is installed, its measurement source, transcoder and rule
// counters. A measurement source that fails is reported on the page,
// which still shows everything else.
func (d *Daemon) adminPage(r *http.Request) (*dashboard.Page, error) {
	o, err := dashboard.ParseOptions(r.URL.Query(), dashboard.Options{Hosts: DefaultAdminHosts, Refresh: DefaultAdminRefresh}, spand.MaxHistoryKeys)
	if err != nil {
		return nil, err
	}
	p := &dashboard.Page{Title: "icapd", Subtitle: "edge adaptation: ICAP " + d.ICAPAddr(), Refresh: o.Refresh, Now: time.Now(),
		Links: []dashboard.Link{{Text: "metrics", Href: "/metrics"}, {Text: "health", Href: "/healthz"}, {Text: "profiler", Href: "/debug/pprof/"}}}
	if a := d.TLSAddr(); a != "" {
		p.Subtitle += ", ICAPS " + a
	}
	var buf strings.Builder
	d.Metrics.WriteTo(&buf)
	ms := dashboard.ParseMetrics(buf.String())
	var transactions float64
	for _, m := range ms {
		if m.Name == "icapd_requests_total" {
			transactions += m.Value
		}
	}
	p.Stats = []dashboard.Stat{
		{Label: "ICAP transactions", Value: dashboard.FormatValue(transactions)},
		{Label: "Open connections", Value: dashboard.FormatValue(float64(d.Metrics.OpenConns())), Note: dashboard.FormatCount(uint64(d.Metrics.AcceptedConns())) + " accepted"},
	}
	if up, ok := dashboard.Find(ms, "icapd_uptime_seconds", ""); ok {
		p.Stats = append(p.Stats, dashboard.Stat{Label: "Uptime", Value: dashboard.FormatAge(time.Duration(up * float64(time.Second)))})
	}

	pl := d.pipeline.Load()
	if pl == nil {
		p.HostsNote = "The adaptation pipeline is not installed: no measurements and no policy."
	} else {
		d.addPipeline(r.Context(), p, pl, o.Hosts)
	}
	p.Tables = append(p.Tables, dashboard.MetricsTable("ICAP and adaptation counters", ms,
		"icapd_requests_total", "icapd_response_204_ratio", "icapd_connections_", "icapd_transcode_", "icapd_early_commit_",
		"icapd_policy_reloads_", "icapd_spand_"))
	return p, nil
}

// addPipeline adds what pl knows to p: hosts with their history,
// savings, rule hits and the policy version.
func (d *Daemon) addPipeline(ctx context.Context, p *dashboard.Page, pl *Pipeline, limit int) {
	ctx, cancel := context.WithTimeout(ctx, DefaultAdminSourceTimeout)
	defer cancel()
	entries, err := pl.Hosts(ctx, limit)
	switch {
	case errors.Is(err, ErrNoMeasurements):
		p.HostsNote = "No measurement source: start icapd with -spand, or with the in-process store."
	case err != nil:
		d.log.Warn("admin page: listing the measured hosts failed", "err", err)
		p.HostsNote = "Measurements unavailable: " + err.Error()
	default:
		keys := make([]spand.Key, 0, len(entries))
		for i := range entries {
			if k, err := spand.KeyOf(&entries[i]); err == nil {
				keys = append(keys, k)
			}
		}
		hist, herr := pl.History(ctx, keys)
		if herr != nil && len(entries) > 0 {
			p.HostsNote = "No history charts: " + herr.Error()
		}
		for i := range entries {
			k, _ := spand.KeyOf(&entries[i])
			p.Hosts = append(p.Hosts, spand.DashboardHost(&entries[i], hist[k]))
		}
	}
	p.Stats = append(p.Stats, dashboard.Stat{Label: "Hosts listed", Value: dashboard.FormatCount(uint64(len(entries))),
		Note: fmt.Sprintf("at most %d (?hosts=N)", limit)})

	var in, out, bodies int64
	for _, s := range pl.Transcoder.Savings() {
		p.Savings = append(p.Savings, dashboard.Saving{ContentType: s.MediaType, Bodies: s.Bodies, BytesIn: s.BytesIn, BytesOut: s.BytesOut})
		in, out, bodies = in+s.BytesIn, out+s.BytesOut, bodies+s.Bodies
	}
	dashboard.SortSavings(p.Savings)
	saved := dashboard.Stat{Label: "Bytes saved", Value: dashboard.FormatBytes(in - out),
		Note: "adapted bodies: " + dashboard.FormatCount(uint64(bodies))}
	if in > 0 {
		saved.Note += ", " + dashboard.FormatPercent(float64(in-out)/float64(in))
	}
	p.Stats = append(p.Stats, saved, dashboard.Stat{Label: "Policy", Value: pl.Holder.Version(), Note: pl.Holder.Path()})
	if pl.Service.Counters != nil {
		for _, r := range pl.Service.Counters.Snapshot() {
			p.Rules = append(p.Rules, dashboard.RuleHits{Rule: r.Rule, Action: r.Action.String(), Hits: r.Count, Skipped: r.Skipped})
		}
	}
}
