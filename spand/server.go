package spand

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Server's limits.
const (
	DefaultMaxBodyBytes = 1 << 20          // bytes of one POST /v1/reports body
	DefaultMaxBatch     = 1000             // reports in one POST
	DefaultRateLimit    = 200              // reports per second per reporter
	DefaultRateBurst    = 2000             // reports a reporter may send at once
	DefaultMaxReporters = 4096             // reporters the rate limiter tracks
	DefaultMaxClockSkew = 10 * time.Minute // how far in the future a report may end
	DefaultHostsLimit   = 100              // entries /v1/hosts returns without ?limit
	MaxHostsLimit       = 10000            // entries /v1/hosts returns at most
)

// Server is the SPAND performance server: an http.Handler with
//
//	POST /v1/reports   a batch of reports: {"reports": [Report...]}
//	GET  /v1/predict   ?addr=IP&class=CLASS (class defaults to web)
//	GET  /v1/hosts     ?limit=N&source=host|local|prefix&class=C: what is
//	                   known, most reported first
//	GET  /v1/history   ?key=KEY...: the samples of keys (history.go)
//	GET  /             the web page (web.go)
//	GET  /metrics      Prometheus text format
//	GET  /healthz      "ok"
//
// Bad input gets 400 with the reason in {"error": "..."}; a batch is
// accepted whole or not at all, so a client can fix it and resend. A
// reporter (the remote IP address) sending more than RateLimit reports per
// second beyond RateBurst gets 429. When Token is set, POST needs
// "Authorization: Bearer TOKEN" (else 401); reads stay open.
//
// The zero value, with Store set, is a valid configuration.
type Server struct {
	Store Store

	Token        string  // bearer token for POST /v1/reports; empty = none needed
	MaxBodyBytes int64   // DefaultMaxBodyBytes
	MaxBatch     int     // DefaultMaxBatch
	RateLimit    float64 // reports/s per reporter; DefaultRateLimit; negative = unlimited
	RateBurst    int     // DefaultRateBurst, at least MaxBatch
	MaxReporters int     // DefaultMaxReporters
	// MaxClockSkew is how far past the server's clock a report may end; a
	// report from the future would never age. DefaultMaxClockSkew.
	MaxClockSkew time.Duration

	// Logger receives a line per rejected request; nil means slog.Default.
	Logger *slog.Logger
	// ExtraMetrics, if set, appends metrics (e.g. the capture's) to /metrics.
	ExtraMetrics func(io.Writer)

	once    sync.Once
	mux     *http.ServeMux
	limiter *limiter

	requests  requestCounter
	rejected  counterVec              // reason
	predicted [numKinds]atomic.Uint64 // by the kind of key that answered
	received  counterVec

	// Testing.
	now func() time.Time
}

func (s *Server) init() {
	s.once.Do(func() {
		if s.now == nil {
			s.now = time.Now
		}
		burst := s.RateBurst
		if burst <= 0 {
			burst = DefaultRateBurst
		}
		burst = max(burst, s.maxBatch())
		rate := s.RateLimit
		if rate == 0 {
			rate = DefaultRateLimit
		}
		maxRep := s.MaxReporters
		if maxRep <= 0 {
			maxRep = DefaultMaxReporters
		}
		s.limiter = &limiter{rate: rate, burst: float64(burst), max: maxRep, m: map[string]*bucket{}}
		s.mux = http.NewServeMux()
		s.mux.HandleFunc("POST /v1/reports", s.handleReports)
		s.mux.HandleFunc("GET /v1/predict", s.handlePredict)
		s.mux.HandleFunc("GET /v1/hosts", s.handleHosts)
		s.mux.HandleFunc("GET /v1/history", s.handleHistory) // history.go
		s.mux.HandleFunc("GET /{$}", s.handleWeb)            // web.go: the dashboard
		s.mux.HandleFunc("GET /metrics", s.handleMetrics)
		s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "ok\n")
		})
	})
}

func (s *Server) maxBatch() int {
	if s.MaxBatch > 0 {
		return s.MaxBatch
	}
	return DefaultMaxBatch
}

func (s *Server) maxBody() int64 {
	if s.MaxBodyBytes > 0 {
		return s.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// statusWriter records the status code for the request counter.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	sw := &statusWriter{ResponseWriter: w}
	s.mux.ServeHTTP(sw, r)
	pattern := r.Pattern // set by the mux: one routing per request
	if pattern == "" {
		pattern = "other"
	} else if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = pattern[i+1:]
	}
	s.requests.inc(pattern, sw.code)
}

// requestCounter counts requests by path pattern and status without
// formatting labels on the hot path.
type requestCounter struct {
	mu sync.Mutex
	m  map[requestKey]float64
}

type requestKey struct {
	path string
	code int
}

func (c *requestCounter) inc(path string, code int) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[requestKey]float64)
	}
	c.m[requestKey{path, code}]++
	c.mu.Unlock()
}

func (c *requestCounter) snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.m))
	for k, v := range c.m {
		out[label("path", k.path)+","+label("code", strconv.Itoa(k.code))] = v
	}
	return out
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// fail answers code with the reason, logs it and counts it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, reason string, err error) {
	s.rejected.add(label("reason", reason), 1)
	s.logger().Warn("spand: request rejected", "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr, "status", code, "reason", reason, "err", err)
	writeJSON(w, code, errorBody{err.Error()})
}

func reporterOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ReportBatch is the body of POST /v1/reports.
type ReportBatch struct {
	Reports []Report `json:"reports"`
}

// ReportsAccepted is the answer to a good POST /v1/reports.
type ReportsAccepted struct {
	Accepted int `json:"accepted"`
}

// DecodeReports parses and validates a POST /v1/reports body: a JSON
// object {"reports": [...]} with no unknown fields and nothing after it,
// at most maxBatch reports, every one valid. The error names the first
// bad report by index.
func DecodeReports(r io.Reader, maxBatch int) ([]Report, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var b ReportBatch
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("decode reports: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode reports: data after the JSON object")
	}
	if len(b.Reports) == 0 {
		return nil, errors.New("decode reports: empty batch")
	}
	if len(b.Reports) > maxBatch {
		return nil, fmt.Errorf("decode reports: %d reports, at most %d per batch", len(b.Reports), maxBatch)
	}
	for i := range b.Reports {
		rep := &b.Reports[i]
		rep.Local, rep.Remote = rep.Local.Unmap(), rep.Remote.Unmap()
		if err := rep.Validate(); err != nil {
			return nil, fmt.Errorf("reports[%d]: %w", i, err)
		}
	}
	return b.Reports, nil
}

func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	if s.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spand"`)
			s.fail(w, r, http.StatusUnauthorized, "unauthorized", errors.New("missing or wrong bearer token"))
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		s.fail(w, r, http.StatusUnsupportedMediaType, "content_type", fmt.Errorf("content type %q, want application/json", ct))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.maxBody())
	reports, err := DecodeReports(body, s.maxBatch())
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "too_large", fmt.Errorf("body over %d bytes", tooBig.Limit))
			return
		}
		s.fail(w, r, http.StatusBadRequest, "invalid", err)
		return
	}
	skew := s.MaxClockSkew
	if skew <= 0 {
		skew = DefaultMaxClockSkew
	}
	now := s.now()
	for i := range reports {
		if end := reports[i].End(); end.After(now.Add(skew)) {
			s.fail(w, r, http.StatusBadRequest, "invalid", fmt.Errorf("reports[%d]: ends at %s, more than %s after the server's clock", i, end.UTC().Format(time.RFC3339), skew))
			return
		}
	}
	if !s.limiter.allow(reporterOf(r), float64(len(reports)), now) {
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusTooManyRequests, "rate_limited",
			fmt.Errorf("reporter %s over %g reports/s", reporterOf(r), s.limiter.rate))
		return
	}
	if err := s.Store.Add(r.Context(), reports); err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "store", fmt.Errorf("store: %w", err))
		return
	}
	s.received.add("", float64(len(reports)))
	writeJSON(w, http.StatusOK, ReportsAccepted{len(reports)})
}

// ParsePredictQuery reads addr and class (default web) from a query.
func ParsePredictQuery(q map[string][]string) (netip.Addr, Class, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return parsePredict(get("addr"), get("class"))
}

// parsePredict is ParsePredictQuery on the two values.
func parsePredict(a, c string) (netip.Addr, Class, error) {
	if a == "" {
		return netip.Addr{}, "", errors.New("addr: missing")
	}
	addr, err := netip.ParseAddr(a)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("addr: %w", err)
	}
	class := ClassWeb
	if c != "" {
		if class, err = ParseClass(c); err != nil {
			return netip.Addr{}, "", err
		}
	}
	return addr.Unmap().WithZone(""), class, nil
}

// predictValues returns the addr and class values of a /v1/predict
// query (the first of each, as url.Values.Get). A plain query (no
// escapes, no ';') is split by hand, as url.ParseQuery splits it,
// without building a map per request; anything else goes through
// r.URL.Query().
func predictValues(r *http.Request) (addr, class string) {
	raw := r.URL.RawQuery
	if strings.ContainsAny(raw, "%+;") {
		q := r.URL.Query()
		return q.Get("addr"), q.Get("class")
	}
	var haveAddr, haveClass bool
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "addr" && !haveAddr:
			addr, haveAddr = v, true
		case k == "class" && !haveClass:
			class, haveClass = v, true
		}
	}
	return addr, class
}

// jsonContentType is the Content-Type header value of JSON answers,
// shared (net/http does not modify it).
var jsonContentType = []string{"application/json"}

func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	addr, class, err := parsePredict(predictValues(r))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "invalid", err)
		return
	}
	p, err := s.Store.Predict(r.Context(), addr, class)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "store", fmt.Errorf("store: %w", err))
		return
	}
	if k, err := ParseKind(p.Source); err == nil {
		s.predicted[k].Add(1)
	}
	bp := jsonBufs.Get().(*[]byte)
	b := appendPredictionJSON((*bp)[:0], &p)
	w.Header()["Content-Type"] = jsonContentType
	w.Write(b)
	*bp = b
	jsonBufs.Put(bp)
}

// HostsAnswer is the body of GET /v1/hosts.
type HostsAnswer struct {
	Count   int          `json:"count"`
	Entries []Prediction `json:"entries"`
}

func (s *Server) handleHosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultHostsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxHostsLimit {
			s.fail(w, r, http.StatusBadRequest, "invalid", fmt.Errorf("limit %q: want 1..%d", v, MaxHostsLimit))
			return
		}
		limit = n
	}
	source := q.Get("source")
	if source != "" {
		if k, err := ParseKind(source); err != nil || k == KindNone {
			s.fail(w, r, http.StatusBadRequest, "invalid", fmt.Errorf("source %q: want host, local, prefix or localprefix", source))
			return
		}
	}
	var class Class
	if v := q.Get("class"); v != "" {
		var err error
		if class, err = ParseClass(v); err != nil {
			s.fail(w, r, http.StatusBadRequest, "invalid", err)
			return
		}
	}
	fetch := limit
	if source != "" || class != "" {
		fetch = MaxHostsLimit // filter first, then cut
	}
	es, err := s.Store.Entries(r.Context(), fetch)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "store", fmt.Errorf("store: %w", err))
		return
	}
	out := es[:0]
	for _, e := range es {
		if (source == "" || e.Source == source) && (class == "" || e.Class == class) {
			out = append(out, e)
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	if out == nil {
		out = []Prediction{}
	}
	writeJSON(w, http.StatusOK, HostsAnswer{len(out), out})
}

func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	writeMetric(&buf, "spand_http_requests_total", "counter", "HTTP requests by path and status.", s.requests.snapshot())
	writeMetric(&buf, "spand_reports_received_total", "counter", "Reports accepted through POST /v1/reports.", s.received.snapshot())
	writeMetric(&buf, "spand_requests_rejected_total", "counter", "Requests rejected, by reason.", s.rejected.snapshot())
	bySource := map[string]float64{}
	for k := range s.predicted {
		if n := s.predicted[k].Load(); n > 0 {
			bySource[label("source", Kind(k).String())] = float64(n)
		}
	}
	writeMetric(&buf, "spand_predictions_total", "counter", "Predictions answered, by the key that answered.", bySource)
	s.Store.Metrics(&buf)
	if s.ExtraMetrics != nil {
		s.ExtraMetrics(&buf)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(buf.Bytes())
}

// limiter is a token bucket per reporter, bounded in the number of
// reporters it tracks.
type limiter struct {
	mu    sync.Mutex
	rate  float64 // tokens per second; negative = unlimited
	burst float64
	max   int
	m     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (l *limiter) allow(key string, n float64, now time.Time) bool {
	if l.rate < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= l.max {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[key] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// sweep forgets buckets that have refilled (the same as a new one); if all
// are still draining, it forgets one at random to stay bounded.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.m {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.max {
			break
		}
		delete(l.m, k)
	}
}
