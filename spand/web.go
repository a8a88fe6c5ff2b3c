package spand

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/dashboard"
	"github.com/edgeadapt/edgeadapt/internal/metric"
)

// Defaults of the web page (GET /).
const (
	// DefaultWebHosts is how many keys the page lists with a chart each
	// (?hosts=N changes it, up to MaxHistoryKeys).
	DefaultWebHosts = 50
	// DefaultWebRefresh is how often the page reloads itself (?refresh=S
	// seconds; 0 turns it off).
	DefaultWebRefresh = dashboard.DefaultRefresh
)

// HistoryPoints turns samples into the points of a dashboard chart.
func HistoryPoints(samples []Sample) []dashboard.Point {
	pts := make([]dashboard.Point, len(samples))
	for i, s := range samples {
		rtt := s.RTTMedian
		if rtt <= 0 {
			rtt = s.RTTMin
		}
		pts[i] = dashboard.Point{Time: time.Unix(0, s.T), Bandwidth: float64(s.Throughput),
			RTT: time.Duration(float64(rtt) * float64(time.Millisecond))}
	}
	return pts
}

// DashboardHost turns a prediction and the samples of its key into a row
// of the dashboards' hosts table; icapd's admin page shows its hosts with
// it too.
func DashboardHost(p *Prediction, samples []Sample) dashboard.Host {
	return dashboard.Host{
		Name: p.Key, Source: p.Source, Class: string(p.Class),
		Bandwidth: p.Throughput, BandwidthLow: p.ThroughputP25, BandwidthHigh: p.ThroughputP75,
		RTT:     time.Duration(p.RTT * float64(time.Millisecond)),
		Loss:    p.Loss,
		Samples: p.Reports,
		Age:     time.Duration(p.Age * float64(time.Second)),
		History: HistoryPoints(samples),
	}
}

// ClassBreakdown summarises entries per application class: keys,
// reports, and the median of the keys' throughput and RTT.
func ClassBreakdown(entries []Prediction) dashboard.Table {
	type agg struct {
		keys, reports int
		thr, rtt      []float64
	}
	by := map[Class]*agg{}
	for i := range entries {
		e := &entries[i]
		a := by[e.Class]
		if a == nil {
			a = &agg{}
			by[e.Class] = a
		}
		a.keys++
		a.reports += e.Reports
		a.thr = append(a.thr, e.Throughput)
		if e.RTT > 0 {
			a.rtt = append(a.rtt, e.RTT)
		}
	}
	classes := make([]Class, 0, len(by))
	for c := range by {
		classes = append(classes, c)
	}
	slices.SortFunc(classes, func(a, b Class) int {
		if c := cmp.Compare(by[b].reports, by[a].reports); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	t := dashboard.Table{Title: "Per class", Columns: []string{"Class", "Keys", "Reports", "Median bandwidth", "Median RTT"},
		Note: "Medians over the keys of each class (hosts, local hosts and prefixes)."}
	for _, c := range classes {
		a := by[c]
		t.Rows = append(t.Rows, []string{string(c), strconv.Itoa(a.keys), strconv.Itoa(a.reports),
			dashboard.FormatBitrate(median(a.thr)), dashboard.FormatRTT(time.Duration(median(a.rtt) * float64(time.Millisecond)))})
	}
	return t
}

// median is metric.Median, or -1 (which formats as "–") for no values.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	return metric.Median(xs)
}

// handleWeb serves GET /, the dashboard: the hosts known with a history
// chart each, a per-class breakdown, and the collector's and store's
// counters. ?hosts=N lists N keys (DefaultWebHosts), ?refresh=S reloads
// every S seconds (DefaultWebRefresh; 0: never).
func (s *Server) handleWeb(w http.ResponseWriter, r *http.Request) {
	dashboard.Handler(s.webPage, s.logger()).ServeHTTP(w, r)
}

func (s *Server) webPage(r *http.Request) (*dashboard.Page, error) {
	o, err := dashboard.ParseOptions(r.URL.Query(), dashboard.Options{Hosts: DefaultWebHosts, Refresh: DefaultWebRefresh}, MaxHistoryKeys)
	if err != nil {
		return nil, err
	}
	limit, refresh := o.Hosts, o.Refresh
	entries, err := s.Store.Entries(r.Context(), MaxHostsLimit)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	p := &dashboard.Page{Title: "spand", Subtitle: "shared passive network performance discovery",
		Refresh: refresh, Now: s.now(),
		Links: []dashboard.Link{{Text: "metrics", Href: "/metrics"}, {Text: "hosts (JSON)", Href: "/v1/hosts"}, {Text: "health", Href: "/healthz"}}}
	hr, _ := s.Store.(HistoryReader)
	shown := entries[:min(limit, len(entries))]
	for i := range shown {
		var samples []Sample
		if k, err := KeyOf(&shown[i]); err == nil && hr != nil {
			samples = hr.History(k)
		}
		p.Hosts = append(p.Hosts, DashboardHost(&shown[i], samples))
	}
	switch {
	case len(entries) > len(shown):
		p.HostsNote = fmt.Sprintf("The first %d of %d keys: remote hosts, local hosts, then prefixes, most reported first (?hosts=N lists up to %d).", len(shown), len(entries), MaxHistoryKeys)
	case hr == nil && len(shown) > 0:
		p.HostsNote = "This store keeps no history: no charts."
	}
	if len(entries) > 0 {
		p.Tables = append(p.Tables, ClassBreakdown(entries))
	}

	var buf bytes.Buffer
	s.Store.Metrics(&buf)
	if s.ExtraMetrics != nil {
		s.ExtraMetrics(&buf)
	}
	ms := dashboard.ParseMetrics(buf.String())
	var received float64
	for _, v := range s.received.snapshot() {
		received += v
	}
	count := func(kind string) string {
		v, _ := dashboard.Find(ms, "spand_keys", `table="`+kind+`"`)
		return dashboard.FormatValue(v)
	}
	agg, _ := dashboard.Find(ms, "spand_aggregated_reports_total", "")
	p.Stats = []dashboard.Stat{
		{Label: "Remote hosts", Value: count("host")},
		{Label: "Local hosts", Value: count("local")},
		{Label: "Remote prefixes", Value: count("prefix")},
		{Label: "Local prefixes", Value: count("localprefix")},
		{Label: "Reports aggregated", Value: dashboard.FormatValue(agg)},
		{Label: "Reports received", Value: dashboard.FormatValue(received), Note: "POST /v1/reports"},
	}
	if pk, ok := dashboard.Find(ms, "spand_capture_packets_read_total", ""); ok {
		p.Stats = append(p.Stats, dashboard.Stat{Label: "Packets captured", Value: dashboard.FormatValue(pk)})
	}
	collector := dashboard.MetricsTable("Collector", ms, "spand_capture_", "spand_track_")
	if len(collector.Rows) == 0 {
		collector.Note = "No capture is running: spand learns from reports only."
	}
	p.Tables = append(p.Tables, collector, dashboard.MetricsTable("Store", ms,
		"spand_aggregated_", "spand_stale_", "spand_keys", "spand_samples", "spand_snapshot_", "spand_redis_"))
	return p, nil
}
