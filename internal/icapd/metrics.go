package icapd

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds (seconds) of the latency histogram:
// from 100 µs (a 204 on loopback) to 10 s (a large body on a slow link).
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics holds icapd's counters and writes them in the Prometheus text
// exposition format (version 0.0.4). It is written by hand because it is
// small and keeps the daemon free of dependencies. All methods are safe
// for concurrent use; the per-transaction path takes a read lock and
// updates atomics.
type Metrics struct {
	mu       sync.RWMutex
	requests map[reqKey]*reqSeries // by service, method, status
	latency  map[svcKey]*histogram // by service, method
	bytes    map[svcKey]*byteSeries

	openConns     atomic.Int64
	acceptedConns atomic.Int64
	refusedConns  atomic.Int64
	start         time.Time

	extra atomic.Pointer[[]func(io.Writer) error] // AddWriter
}

// AddWriter adds f to what WriteTo writes, after the daemon's own
// metrics (the adaptation pipeline's counters).
func (m *Metrics) AddWriter(f func(io.Writer) error) {
	for {
		old := m.extra.Load()
		var fs []func(io.Writer) error
		if old != nil {
			fs = append(fs, *old...)
		}
		fs = append(fs, f)
		if m.extra.CompareAndSwap(old, &fs) {
			return
		}
	}
}

type svcKey struct{ service, method string }

type reqKey struct {
	svcKey
	status int
}

type reqSeries struct{ n atomic.Int64 }

type byteSeries struct{ in, out atomic.Int64 }

type histogram struct {
	counts [17]atomic.Int64 // len(latencyBuckets)+1, the last is +Inf
	sumNs  atomic.Int64
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: make(map[reqKey]*reqSeries),
		latency:  make(map[svcKey]*histogram),
		bytes:    make(map[svcKey]*byteSeries),
		start:    time.Now(),
	}
}

// Transaction is what the daemon records about one ICAP transaction.
type Transaction struct {
	Service  string // service path, e.g. "/echo"
	Method   string // OPTIONS, REQMOD, RESPMOD, or what the client sent
	Status   int    // ICAP status code
	BytesIn  int64  // bytes read from the client for this transaction
	BytesOut int64  // bytes written to the client
	Duration time.Duration
	ClientIP string // X-Client-IP, empty if absent
	Remote   string // the ICAP client's address
}

// Observe records one transaction.
func (m *Metrics) Observe(t Transaction) {
	sk := svcKey{t.Service, t.Method}
	rk := reqKey{sk, t.Status}
	m.mu.RLock()
	r, h, b := m.requests[rk], m.latency[sk], m.bytes[sk]
	m.mu.RUnlock()
	if r == nil || h == nil || b == nil {
		m.mu.Lock()
		if r = m.requests[rk]; r == nil {
			r = new(reqSeries)
			m.requests[rk] = r
		}
		if h = m.latency[sk]; h == nil {
			h = new(histogram)
			m.latency[sk] = h
		}
		if b = m.bytes[sk]; b == nil {
			b = new(byteSeries)
			m.bytes[sk] = b
		}
		m.mu.Unlock()
	}
	r.n.Add(1)
	b.in.Add(t.BytesIn)
	b.out.Add(t.BytesOut)
	sec := t.Duration.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, sec)
	h.counts[i].Add(1)
	h.sumNs.Add(int64(t.Duration))
}

// ConnOpened and ConnClosed track open ICAP connections.
func (m *Metrics) ConnOpened() { m.openConns.Add(1); m.acceptedConns.Add(1) }

// ConnClosed is the counterpart of ConnOpened.
func (m *Metrics) ConnClosed() { m.openConns.Add(-1) }

// ConnRefused counts a connection refused by the allow-list.
func (m *Metrics) ConnRefused() { m.refusedConns.Add(1) }

// OpenConns returns the number of open ICAP connections.
func (m *Metrics) OpenConns() int64 { return m.openConns.Load() }

// AcceptedConns returns how many ICAP connections were accepted so far.
func (m *Metrics) AcceptedConns() int64 { return m.acceptedConns.Load() }

// RefusedConns returns how many connections the allow-list refused.
func (m *Metrics) RefusedConns() int64 { return m.refusedConns.Load() }

// Requests returns how many transactions ended with status on service
// and method; method "" counts every method.
func (m *Metrics) Requests(service, method string, status int) int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var n int64
	for k, v := range m.requests {
		if k.service == service && (method == "" || k.method == method) && k.status == status {
			n += v.n.Load()
		}
	}
	return n
}

// WriteTo writes the metrics in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	m.mu.RLock()
	reqKeys := sortedKeys(m.requests, func(a, b reqKey) int {
		if c := cmpSvc(a.svcKey, b.svcKey); c != 0 {
			return c
		}
		return cmp.Compare(a.status, b.status)
	})
	svcKeys := sortedKeys(m.latency, cmpSvc)

	b.WriteString("# HELP icapd_requests_total ICAP transactions by service, method and ICAP status.\n# TYPE icapd_requests_total counter\n")
	type tally struct{ all, s204, s206 int64 }
	ratios := map[string]*tally{}
	for _, k := range reqKeys {
		n := m.requests[k].n.Load()
		fmt.Fprintf(&b, "icapd_requests_total{service=%q,method=%q,status=\"%d\"} %d\n", k.service, k.method, k.status, n)
		if k.method == "REQMOD" || k.method == "RESPMOD" {
			t := ratios[k.service]
			if t == nil {
				t = new(tally)
				ratios[k.service] = t
			}
			t.all += n
			switch k.status {
			case 204:
				t.s204 += n
			case 206:
				t.s206 += n
			}
		}
	}
	services := sortedKeys(ratios, strings.Compare)
	b.WriteString("# HELP icapd_response_204_ratio Share of REQMOD/RESPMOD transactions answered 204 No Content, by service.\n# TYPE icapd_response_204_ratio gauge\n")
	for _, s := range services {
		fmt.Fprintf(&b, "icapd_response_204_ratio{service=%q} %s\n", s, fmtFloat(float64(ratios[s].s204)/float64(ratios[s].all)))
	}
	b.WriteString("# HELP icapd_response_206_ratio Share of REQMOD/RESPMOD transactions answered 206 Partial Content, by service.\n# TYPE icapd_response_206_ratio gauge\n")
	for _, s := range services {
		fmt.Fprintf(&b, "icapd_response_206_ratio{service=%q} %s\n", s, fmtFloat(float64(ratios[s].s206)/float64(ratios[s].all)))
	}

	b.WriteString("# HELP icapd_request_duration_seconds ICAP transaction latency, from the request line to the last byte of the response.\n# TYPE icapd_request_duration_seconds histogram\n")
	for _, k := range svcKeys {
		h := m.latency[k]
		var cum int64
		for i, ub := range latencyBuckets {
			cum += h.counts[i].Load()
			fmt.Fprintf(&b, "icapd_request_duration_seconds_bucket{service=%q,method=%q,le=%q} %d\n", k.service, k.method, fmtFloat(ub), cum)
		}
		cum += h.counts[len(latencyBuckets)].Load()
		fmt.Fprintf(&b, "icapd_request_duration_seconds_bucket{service=%q,method=%q,le=\"+Inf\"} %d\n", k.service, k.method, cum)
		fmt.Fprintf(&b, "icapd_request_duration_seconds_sum{service=%q,method=%q} %s\n", k.service, k.method, fmtFloat(time.Duration(h.sumNs.Load()).Seconds()))
		fmt.Fprintf(&b, "icapd_request_duration_seconds_count{service=%q,method=%q} %d\n", k.service, k.method, cum)
	}
	b.WriteString("# HELP icapd_received_bytes_total Bytes read from ICAP clients, by service and method.\n# TYPE icapd_received_bytes_total counter\n")
	for _, k := range svcKeys {
		fmt.Fprintf(&b, "icapd_received_bytes_total{service=%q,method=%q} %d\n", k.service, k.method, m.bytes[k].in.Load())
	}
	b.WriteString("# HELP icapd_sent_bytes_total Bytes written to ICAP clients, by service and method.\n# TYPE icapd_sent_bytes_total counter\n")
	for _, k := range svcKeys {
		fmt.Fprintf(&b, "icapd_sent_bytes_total{service=%q,method=%q} %d\n", k.service, k.method, m.bytes[k].out.Load())
	}
	m.mu.RUnlock()

	fmt.Fprintf(&b, "# HELP icapd_open_connections ICAP connections open now.\n# TYPE icapd_open_connections gauge\nicapd_open_connections %d\n", m.openConns.Load())
	fmt.Fprintf(&b, "# HELP icapd_connections_accepted_total ICAP connections accepted.\n# TYPE icapd_connections_accepted_total counter\nicapd_connections_accepted_total %d\n", m.acceptedConns.Load())
	fmt.Fprintf(&b, "# HELP icapd_connections_refused_total ICAP connections refused by the client allow-list.\n# TYPE icapd_connections_refused_total counter\nicapd_connections_refused_total %d\n", m.refusedConns.Load())
	fmt.Fprintf(&b, "# HELP icapd_uptime_seconds Seconds since icapd started.\n# TYPE icapd_uptime_seconds gauge\nicapd_uptime_seconds %s\n", fmtFloat(time.Since(m.start).Seconds()))
	if fs := m.extra.Load(); fs != nil {
		for _, f := range *fs {
			f(&b)
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

func cmpSvc(a, b svcKey) int {
	if c := strings.Compare(a.service, b.service); c != 0 {
		return c
	}
	return strings.Compare(a.method, b.method)
}

func fmtFloat(f float64) string {
	if math.IsNaN(f) {
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
