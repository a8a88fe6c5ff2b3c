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

	"github.com/edgeadapt/edgeadapt/internal/promtext"
)

// latencyBuckets are the upper bounds (seconds) of the latency histogram:
// from 100 µs (a 204 on loopback) to 10 s (a large body on a slow link).
var latencyBuckets = [numBuckets]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// latencyBucketsNs are latencyBuckets in nanoseconds, for bucketOf.
var latencyBucketsNs = func() (ns [numBuckets]int64) {
	for i, s := range latencyBuckets {
		ns[i] = int64(math.Round(s * 1e9))
	}
	return ns
}()

const numBuckets = 16

// numStatusSlots bounds the ICAP statuses counted in a series' array;
// others (never sent by icap.Server) go to a locked map.
const numStatusSlots = 600

// Metrics holds icapd's counters and writes them in the Prometheus text
// exposition format (version 0.0.4). It is written by hand because it is
// small and keeps the daemon free of dependencies. All methods are safe
// for concurrent use.
//
// The per-transaction path costs a few atomic adds: every (service,
// method) pair has a series with an array of status counters, a histogram
// and byte counters, found in a copy-on-write map without a lock, or
// resolved once in advance (serviceSeries, as the daemon does for its
// services). A series appears in the exposition once it has counted a
// transaction.
type Metrics struct {
	mu     sync.Mutex                         // serialises adding series
	series atomic.Pointer[map[svcKey]*series] // copy-on-write

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

// series holds the counters of one service and method.
type series struct {
	key    svcKey
	status [numStatusSlots]atomic.Int64 // transactions by ICAP status
	n      atomic.Int64                 // transactions, the histogram's count
	counts [numBuckets + 1]atomic.Int64 // by latency bucket; the last is +Inf
	sumNs  atomic.Int64
	in     atomic.Int64
	out    atomic.Int64

	mu    sync.Mutex
	other map[int]int64 // statuses outside [0, numStatusSlots)
}

// observe counts one transaction.
func (s *series) observe(status int, in, out int64, d time.Duration) {
	if uint(status) < numStatusSlots {
		s.status[status].Add(1)
	} else {
		s.mu.Lock()
		if s.other == nil {
			s.other = make(map[int]int64)
		}
		s.other[status]++
		s.mu.Unlock()
	}
	s.in.Add(in)
	s.out.Add(out)
	s.counts[bucketOf(d)].Add(1)
	s.sumNs.Add(int64(d))
	s.n.Add(1)
}

// bucketOf returns the index of the histogram bucket of d: the number of
// upper bounds below d (a bound equal to d is d's bucket, "le"). It
// compares with all 16 bounds without a branch: (bound - d) >> 63 is -1
// when bound < d and 0 otherwise.
func bucketOf(d time.Duration) int {
	ns := max(int64(d), 0) // a negative duration (a clock step) counts in the first bucket
	var i int64
	for _, ub := range latencyBucketsNs {
		i -= (ub - ns) >> 63
	}
	return int(i)
}

// statusCount is one status of a series and its count.
type statusCount struct {
	status int
	n      int64
}

// statuses returns the statuses s counted, in ascending order.
func (s *series) statuses() []statusCount {
	var out []statusCount
	for i := range s.status {
		if n := s.status[i].Load(); n != 0 {
			out = append(out, statusCount{i, n})
		}
	}
	s.mu.Lock()
	for st, n := range s.other {
		out = append(out, statusCount{st, n})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b statusCount) int { return cmp.Compare(a.status, b.status) })
	return out
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	m := &Metrics{start: time.Now()}
	m.series.Store(&map[svcKey]*series{})
	return m
}

// seriesOf returns the series of service and method, adding it if new.
func (m *Metrics) seriesOf(service, method string) *series {
	k := svcKey{service, method}
	if s := (*m.series.Load())[k]; s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if s := old[k]; s != nil {
		return s
	}
	s := &series{key: k}
	next := make(map[svcKey]*series, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[k] = s
	m.series.Store(&next)
	return s
}

// serviceSeries are the series of one service for the methods the daemon
// labels: OPTIONS, REQMOD, RESPMOD and "other".
type serviceSeries [4]*series

// serviceSeries resolves the series of service in advance.
func (m *Metrics) serviceSeries(service string) *serviceSeries {
	var ss serviceSeries
	for i, method := range [...]string{"OPTIONS", "REQMOD", "RESPMOD", "other"} {
		ss[i] = m.seriesOf(service, method)
	}
	return &ss
}

// of returns the series of method; methods other than OPTIONS, REQMOD and
// RESPMOD count as "other".
func (ss *serviceSeries) of(method string) *series {
	switch method {
	case "OPTIONS":
		return ss[0]
	case "REQMOD":
		return ss[1]
	case "RESPMOD":
		return ss[2]
	}
	return ss[3]
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
	m.seriesOf(t.Service, t.Method).observe(t.Status, t.BytesIn, t.BytesOut, t.Duration)
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
	var n int64
	for k, s := range *m.series.Load() {
		if k.service == service && (method == "" || k.method == method) {
			for _, sc := range s.statuses() {
				if sc.status == status {
					n += sc.n
				}
			}
		}
	}
	return n
}

// WriteTo writes the metrics in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	// Series that have counted nothing yet (resolved in advance by
	// serviceSeries) are left out, as if they did not exist.
	var all []*series
	for _, s := range *m.series.Load() {
		if s.n.Load() != 0 {
			all = append(all, s)
		}
	}
	slices.SortFunc(all, func(a, b *series) int { return cmpSvc(a.key, b.key) })

	promtext.Header(&b, "icapd_requests_total", "counter", "ICAP transactions by service, method and ICAP status.")
	type tally struct{ all, s204, s206 int64 }
	ratios := map[string]*tally{}
	for _, s := range all {
		k := s.key
		for _, sc := range s.statuses() {
			n := sc.n
			fmt.Fprintf(&b, "icapd_requests_total{service=%q,method=%q,status=\"%d\"} %d\n", k.service, k.method, sc.status, n)
			if k.method == "REQMOD" || k.method == "RESPMOD" {
				t := ratios[k.service]
				if t == nil {
					t = new(tally)
					ratios[k.service] = t
				}
				t.all += n
				switch sc.status {
				case 204:
					t.s204 += n
				case 206:
					t.s206 += n
				}
			}
		}
	}
	services := sortedKeys(ratios, strings.Compare)
	promtext.Header(&b, "icapd_response_204_ratio", "gauge", "Share of REQMOD/RESPMOD transactions answered 204 No Content, by service.")
	for _, s := range services {
		fmt.Fprintf(&b, "icapd_response_204_ratio{service=%q} %s\n", s, fmtFloat(float64(ratios[s].s204)/float64(ratios[s].all)))
	}
	promtext.Header(&b, "icapd_response_206_ratio", "gauge", "Share of REQMOD/RESPMOD transactions answered 206 Partial Content, by service.")
	for _, s := range services {
		fmt.Fprintf(&b, "icapd_response_206_ratio{service=%q} %s\n", s, fmtFloat(float64(ratios[s].s206)/float64(ratios[s].all)))
	}

	promtext.Header(&b, "icapd_request_duration_seconds", "histogram", "ICAP transaction latency, from the request line to the last byte of the response.")
	for _, s := range all {
		k := s.key
		var cum int64
		for i, ub := range latencyBuckets {
			cum += s.counts[i].Load()
			fmt.Fprintf(&b, "icapd_request_duration_seconds_bucket{service=%q,method=%q,le=%q} %d\n", k.service, k.method, fmtFloat(ub), cum)
		}
		cum += s.counts[numBuckets].Load()
		fmt.Fprintf(&b, "icapd_request_duration_seconds_bucket{service=%q,method=%q,le=\"+Inf\"} %d\n", k.service, k.method, cum)
		fmt.Fprintf(&b, "icapd_request_duration_seconds_sum{service=%q,method=%q} %s\n", k.service, k.method, fmtFloat(time.Duration(s.sumNs.Load()).Seconds()))
		fmt.Fprintf(&b, "icapd_request_duration_seconds_count{service=%q,method=%q} %d\n", k.service, k.method, cum)
	}
	promtext.Header(&b, "icapd_received_bytes_total", "counter", "Bytes read from ICAP clients, by service and method.")
	for _, s := range all {
		fmt.Fprintf(&b, "icapd_received_bytes_total{service=%q,method=%q} %d\n", s.key.service, s.key.method, s.in.Load())
	}
	promtext.Header(&b, "icapd_sent_bytes_total", "counter", "Bytes written to ICAP clients, by service and method.")
	for _, s := range all {
		fmt.Fprintf(&b, "icapd_sent_bytes_total{service=%q,method=%q} %d\n", s.key.service, s.key.method, s.out.Load())
	}

	promtext.Value(&b, "icapd_open_connections", "gauge", "ICAP connections open now.", m.openConns.Load())
	promtext.Value(&b, "icapd_connections_accepted_total", "counter", "ICAP connections accepted.", m.acceptedConns.Load())
	promtext.Value(&b, "icapd_connections_refused_total", "counter", "ICAP connections refused by the client allow-list.", m.refusedConns.Load())
	promtext.Value(&b, "icapd_uptime_seconds", "gauge", "Seconds since icapd started.", fmtFloat(time.Since(m.start).Seconds()))
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
