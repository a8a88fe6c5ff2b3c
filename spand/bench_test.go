package spand

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Speed goals (issue 3): a prediction in under 10 µs in-process and under
// 1 ms p99 over loopback HTTP. Run:
//
//	go test -run '^$' -bench 'Predict' -benchmem ./spand/
//
// The HTTP benchmarks report p50 and p99 latencies (µs) next to ns/op.

func filledAggregator(b *testing.B, hosts int) (*Aggregator, []netip.Addr) {
	b.Helper()
	a, clk := NewAggregator(Config{MaxKeys: hosts * 2}), newFakeClock()
	a.SetClock(clk.Now)
	addrs := make([]netip.Addr, hosts)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	for s := range DefaultMaxSamples {
		for i, addr := range addrs {
			r := rep("10.0.0.5", addr.String(), ClassWeb, clk.Now().Add(-time.Duration(s)*time.Minute), float64(1000+(i*7+s*13)%5000))
			a.Add(r)
		}
	}
	return a, addrs
}

// BenchmarkPredict: host key with a full ring of DefaultMaxSamples (32)
// samples, 4096 hosts.
func BenchmarkPredict(b *testing.B) {
	a, addrs := filledAggregator(b, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if p := a.Predict(addrs[i%len(addrs)], ClassWeb); p.Source != "host" {
			b.Fatal(p.Source)
		}
	}
}

// BenchmarkPredictFallback: unknown host, answered by its /24 (two misses
// first); the prefix key holds 32 samples too.
func BenchmarkPredictFallback(b *testing.B) {
	a, _ := filledAggregator(b, 4096)
	addr := netip.MustParseAddr("198.18.0.250")
	a.mu.Lock()
	delete(a.tables[KindHost].m, Key{KindHost, hostPrefix(addr), ClassWeb})
	a.mu.Unlock()
	b.ReportAllocs()
	for b.Loop() {
		if p := a.Predict(addr, ClassWeb); p.Source != "prefix" {
			b.Fatal(p.Source)
		}
	}
}

// BenchmarkAdd: one report into three tables.
func BenchmarkAdd(b *testing.B) {
	a, addrs := filledAggregator(b, 4096)
	r := rep("10.0.0.5", "198.18.0.1", ClassWeb, a.Now(), 1234)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Remote = addrs[i%len(addrs)]
		a.Add(r)
	}
}

// benchHTTP measures b.N sequential predictions through the Client over a
// loopback TCP connection and reports p50/p99.
func benchHTTP(b *testing.B, c *Client, addrs []netip.Addr) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p, err := c.Predict(ctx, addrs[i%len(addrs)], ClassWeb)
		lat = append(lat, time.Since(t0))
		if err != nil || p.Source != "host" {
			b.Fatal(p.Source, err)
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
}

func benchServer(b *testing.B) (*httptest.Server, []netip.Addr) {
	a, addrs := filledAggregator(b, 4096)
	srv := &Server{Store: &MemoryStore{Aggregator: a}, Logger: slog.New(slog.DiscardHandler)}
	ts := httptest.NewServer(srv)
	b.Cleanup(ts.Close)
	return ts, addrs
}

// BenchmarkPredictHTTP: GET /v1/predict over loopback, keep-alive, no
// client cache.
func BenchmarkPredictHTTP(b *testing.B) {
	ts, addrs := benchServer(b)
	benchHTTP(b, &Client{BaseURL: ts.URL, CacheTTL: -1, HTTPClient: &http.Client{Timeout: 10 * time.Second}}, addrs)
}

// BenchmarkHealthzHTTP is the peer of BenchmarkPredictHTTP in the same
// run: GET /healthz on the same server and client stack, the floor of any
// answer over loopback HTTP on this machine.
func BenchmarkHealthzHTTP(b *testing.B) {
	ts, _ := benchServer(b)
	hc := &http.Client{Timeout: 10 * time.Second}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		resp, err := hc.Get(ts.URL + "/healthz")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkPredictHTTPCached: the same through the Client's cache (what
// icapd sees for a client it asked about within the TTL).
func BenchmarkPredictHTTPCached(b *testing.B) {
	ts, addrs := benchServer(b)
	benchHTTP(b, &Client{BaseURL: ts.URL, CacheTTL: time.Hour}, addrs[:64])
}

// BenchmarkServePredict: the server's handler alone (query parsing,
// prediction, JSON), no network.
func BenchmarkServePredict(b *testing.B) {
	a, addrs := filledAggregator(b, 4096)
	srv := &Server{Store: &MemoryStore{Aggregator: a}, Logger: slog.New(slog.DiscardHandler)}
	reqs := make([]*http.Request, len(addrs))
	for i, addr := range addrs {
		reqs[i] = httptest.NewRequest("GET", "/v1/predict?class=web&addr="+addr.String(), nil)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, reqs[i%len(reqs)])
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
