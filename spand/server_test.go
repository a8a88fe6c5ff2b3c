package spand

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// newTestServer runs srv (its store on clk) on a loopback httptest server.
func newTestServer(t *testing.T, srv *Server, clk *fakeClock) *httptest.Server {
	t.Helper()
	if srv.Store == nil {
		m, err := NewMemoryStore(Config{}, "")
		if err != nil {
			t.Fatal(err)
		}
		m.SetClock(clk.Now)
		srv.Store = m
	}
	srv.now = clk.Now
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

func batchJSON(t *testing.T, reports ...Report) string {
	t.Helper()
	b, err := json.Marshal(ReportBatch{reports})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServerReportPredictHosts(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{}
	ts := newTestServer(t, srv, clk)
	c := &Client{BaseURL: ts.URL, CacheTTL: -1}
	ctx := context.Background()

	reports := []Report{
		rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5),
		rep("10.0.0.6", "192.0.2.10", ClassWeb, clk.Now(), 3e5),
		rep("10.0.0.6", "192.0.2.11", ClassWeb, clk.Now(), 2e5),
	}
	if err := c.Report(ctx, reports); err != nil {
		t.Fatalf("Report: %v", err)
	}
	p, err := c.Predict(ctx, netip.MustParseAddr("192.0.2.10"), ClassWeb)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != "host" || p.Reports != 2 || p.Throughput != 1e5 || p.ThroughputP75 != 3e5 {
		t.Fatalf("prediction %+v, want host answer from 2 reports, median 1e5, p75 3e5", p)
	}
	p, _ = c.Predict(ctx, netip.MustParseAddr("192.0.2.200"), ClassWeb)
	if p.Source != "prefix" || p.Reports != 3 {
		t.Fatalf("neighbour prediction %+v, want the /24 with 3 reports", p)
	}
	hosts, err := c.Hosts(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 2 remote hosts + 2 local hosts + 1 prefix.
	if len(hosts) != 5 || hosts[0].Source != "host" || hosts[0].Key != "192.0.2.10" || hosts[4].Source != "prefix" {
		t.Fatalf("hosts = %+v", hosts)
	}
	// More than the server's batch limit: the client splits.
	small := &Server{MaxBatch: 2, Logger: slog.New(slog.DiscardHandler)}
	ts2 := newTestServer(t, small, clk)
	five := []Report{reports[0], reports[1], reports[2], reports[0], reports[1]}
	if err := (&Client{BaseURL: ts2.URL, MaxBatch: 2}).Report(ctx, five); err != nil {
		t.Fatalf("split report: %v", err)
	}
	if st := small.Store.(*MemoryStore).Stats(); st.Reports != 5 {
		t.Fatalf("server aggregated %d of 5 split reports", st.Reports)
	}
	if err := (&Client{BaseURL: ts2.URL, MaxBatch: 3}).Report(ctx, five); err == nil {
		t.Fatal("batch over the server's limit accepted")
	}
	resp0, err := http.Get(ts.URL + "/v1/hosts?source=local&class=web")
	if err != nil {
		t.Fatal(err)
	}
	var locals HostsAnswer
	json.NewDecoder(resp0.Body).Decode(&locals)
	resp0.Body.Close()
	if locals.Count != 2 || locals.Entries[0].Source != "local" || locals.Entries[1].Source != "local" {
		t.Fatalf("hosts?source=local = %+v", locals)
	}
	if h, _ := c.Hosts(ctx, 2); len(h) != 2 {
		t.Fatalf("hosts?limit=2 gave %d entries", len(h))
	}

	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"spand_reports_received_total 3",
		`spand_predictions_total{source="host"} 1`,
		`spand_predictions_total{source="prefix"} 1`,
		`spand_keys{table="host"} 2`,
		`spand_http_requests_total{path="/v1/reports",code="200"} 1`,
		"# TYPE spand_keys gauge",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	resp, err = http.Get(ts.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestServerRejectsBadInput(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{MaxBatch: 2, MaxBodyBytes: 4096}
	ts := newTestServer(t, srv, clk)
	good := rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5)
	badClass := good
	badClass.Class = "ftp"
	future := good
	future.Start = clk.Now().Add(time.Hour)

	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		errHas                          string
	}{
		{"not json", "POST", "/v1/reports", "", "{", 400, "decode reports"},
		{"unknown field", "POST", "/v1/reports", "", `{"reports":[],"x":1}`, 400, "unknown field"},
		{"trailing data", "POST", "/v1/reports", "", batchJSON(t, good) + "{}", 400, "after the JSON"},
		{"empty batch", "POST", "/v1/reports", "", `{"reports":[]}`, 400, "empty batch"},
		{"too many", "POST", "/v1/reports", "", batchJSON(t, good, good, good), 400, "at most 2"},
		{"bad report", "POST", "/v1/reports", "", batchJSON(t, good, badClass), 400, `reports[1]: spand: invalid report: class`},
		{"from the future", "POST", "/v1/reports", "", batchJSON(t, future), 400, "after the server's clock"},
		{"bad addr type", "POST", "/v1/reports", "", `{"reports":[{"local":5}]}`, 400, "decode reports"},
		{"bad addr", "POST", "/v1/reports", "", `{"reports":[{"local":"10.0.0.300"}]}`, 400, "decode reports"},
		{"too large", "POST", "/v1/reports", "", `{"reports":[` + strings.Repeat(" ", 5000) + `]}`, 413, "over 4096 bytes"},
		{"content type", "POST", "/v1/reports", "text/plain", batchJSON(t, good), 415, "content type"},
		{"predict no addr", "GET", "/v1/predict?class=web", "", "", 400, "addr: missing"},
		{"predict bad addr", "GET", "/v1/predict?addr=foo", "", "", 400, "addr:"},
		{"predict bad class", "GET", "/v1/predict?addr=192.0.2.1&class=ftp", "", "", 400, "unknown class"},
		{"hosts bad limit", "GET", "/v1/hosts?limit=0", "", "", 400, "limit"},
		{"hosts bad source", "GET", "/v1/hosts?source=none", "", "", 400, "source"},
		{"hosts bad class", "GET", "/v1/hosts?class=x", "", "", 400, "class"},
		{"method", "GET", "/v1/reports", "", "", 405, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.errHas) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tt.name, resp.StatusCode, body, tt.code, tt.errHas)
		}
	}
	// Nothing of the rejected batches was aggregated, not even the good
	// report next to the bad one.
	if st := srv.Store.(*MemoryStore).Stats(); st.Reports != 0 {
		t.Fatalf("%d reports aggregated from rejected batches", st.Reports)
	}
}

func TestServerToken(t *testing.T) {
	clk := newFakeClock()
	ts := newTestServer(t, &Server{Token: "s3cret"}, clk)
	reports := []Report{rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5)}
	ctx := context.Background()
	for _, tok := range []string{"", "wrong"} {
		err := (&Client{BaseURL: ts.URL, Token: tok}).Report(ctx, reports)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 401 {
			t.Fatalf("token %q: %v, want 401", tok, err)
		}
	}
	c := &Client{BaseURL: ts.URL, Token: "s3cret"}
	if err := c.Report(ctx, reports); err != nil {
		t.Fatalf("right token: %v", err)
	}
	// Reading needs no token.
	if p, err := (&Client{BaseURL: ts.URL}).Predict(ctx, netip.MustParseAddr("192.0.2.10"), ClassWeb); err != nil || !p.Known() {
		t.Fatalf("predict without token: %+v %v", p, err)
	}
}

func TestServerRateLimit(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{RateLimit: 1, RateBurst: 2, MaxBatch: 2}
	newTestServer(t, srv, clk) // sets the store and clock
	body := batchJSON(t, rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5))
	post := func(from string) int {
		req := httptest.NewRequest("POST", "/v1/reports", strings.NewReader(body))
		req.RemoteAddr = from
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		return w.Code
	}
	for i, want := range []int{200, 200, 429} {
		if got := post("192.0.2.1:1000"); got != want {
			t.Fatalf("report %d from a: %d, want %d", i, got, want)
		}
	}
	if got := post("192.0.2.2:1000"); got != 200 {
		t.Fatalf("another reporter limited too: %d", got)
	}
	clk.Advance(time.Second)
	if got := post("192.0.2.1:2000"); got != 200 {
		t.Fatalf("after 1 s at 1 report/s: %d, want 200", got)
	}
	if got := post("192.0.2.1:2000"); got != 429 {
		t.Fatalf("bucket not drained again: %d", got)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := &limiter{rate: 1, burst: 2, max: 10, m: map[string]*bucket{}}
	now := time.Now()
	for i := range 1000 {
		l.allow(fmt.Sprint(i), 1, now)
	}
	if len(l.m) > 10 {
		t.Fatalf("limiter tracks %d reporters, max 10", len(l.m))
	}
}

func TestClientCache(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{}
	var hits atomic.Int64
	newTestServer(t, srv, clk)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/predict" {
			hits.Add(1)
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := &Client{BaseURL: ts.URL, CacheTTL: 5 * time.Second, MaxCacheEntries: 2, now: clk.Now}
	ctx := context.Background()
	if err := c.Report(ctx, []Report{rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5)}); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.10")
	for range 3 {
		if p, err := c.Predict(ctx, a, ClassWeb); err != nil || p.Throughput != 1e5 {
			t.Fatalf("Predict: %+v %v", p, err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d server hits for 3 predictions within the TTL, want 1", n)
	}
	clk.Advance(6 * time.Second)
	c.Predict(ctx, a, ClassWeb)
	if n := hits.Load(); n != 2 {
		t.Fatalf("%d server hits after the TTL, want 2", n)
	}
	for i := range 5 {
		c.Predict(ctx, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), ClassWeb)
	}
	if n := len(c.cache); n > 2 {
		t.Fatalf("cache holds %d entries, MaxCacheEntries 2", n)
	}
	// A dead server is an error, not a zero prediction.
	ts.Close()
	if _, err := c.Predict(ctx, netip.MustParseAddr("198.51.100.1"), ClassWeb); err == nil {
		t.Fatal("no error from a closed server")
	}
}

func TestSnapshotRestartKeepsPredictions(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "spand.snap")
	m1, err := NewMemoryStore(Config{HalfLife: time.Minute}, path)
	if err != nil {
		t.Fatal(err)
	}
	m1.SetClock(clk.Now)
	for i := range 20 {
		m1.Aggregator.Add(rep("10.0.0.5", netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 4)}).String(), ClassBulk, clk.Now(), float64(1000*(i+1))))
		clk.Advance(10 * time.Second)
	}
	before := m1.Aggregator.Entries(0)
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := NewMemoryStore(Config{HalfLife: time.Minute}, path)
	if err != nil {
		t.Fatal(err)
	}
	m2.SetClock(clk.Now)
	after, _ := m2.Entries(context.Background(), 0)
	if len(before) != 6 || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("after restart\n %v\nwant\n %v", after, before)
	}
	// A corrupt snapshot is an error naming the file, not an empty store.
	if err := writeFileAtomic(path, func(w io.Writer) error { _, err := w.Write([]byte("{")); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMemoryStore(Config{}, path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt snapshot: %v", err)
	}
}

func FuzzDecodeReports(f *testing.F) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	good, _ := json.Marshal(ReportBatch{[]Report{rep("10.0.0.5", "2001:db8::1", ClassWeb, now, 1e5)}})
	f.Add(good)
	f.Add([]byte(`{"reports":[{"local":"::ffff:10.0.0.1","remote":"192.0.2.1","class":"bulk","start":"2026-01-01T00:00:00Z","duration_s":1e308,"bytes":1,"throughput":1}]}`))
	f.Add([]byte(`{"reports":[{"local":"fe80::1%eth0","remote":"192.0.2.1","class":"web","start":"0001-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"reports":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		reports, err := DecodeReports(bytes.NewReader(data), 10)
		if err != nil {
			return
		}
		if len(reports) == 0 || len(reports) > 10 {
			t.Fatalf("accepted %d reports", len(reports))
		}
		a := NewAggregator(Config{})
		a.SetClock(func() time.Time { return now })
		for i := range reports {
			if err := reports[i].Validate(); err != nil {
				t.Fatalf("accepted an invalid report: %v", err)
			}
			a.Add(reports[i])
			p := a.Predict(reports[i].Remote, reports[i].Class)
			if p.Reports < 0 || p.Throughput < 0 {
				t.Fatalf("prediction %+v", p)
			}
		}
		// What was accepted must survive the round trip to JSON.
		b, err := json.Marshal(ReportBatch{reports})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeReports(bytes.NewReader(b), 10); err != nil {
			t.Fatalf("re-encoding accepted reports breaks them: %v\n%s", err, b)
		}
	})
}

func TestRunSnapshotsSavesAndExpires(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "snap")
	m, err := NewMemoryStore(Config{MaxAge: time.Hour}, path)
	if err != nil {
		t.Fatal(err)
	}
	m.SetClock(clk.Now)
	m.Aggregator.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5))
	clk.Advance(2 * time.Hour) // stale by the next tick
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.RunSnapshots(ctx, time.Millisecond, nil); close(done) }()
	testenv.Poll(t, 10*time.Second, "an expiry and a save", func() bool {
		return m.Stats().Keys[KindHost] == 0 && m.saveCount() > 0
	})
	cancel()
	<-done
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestServerConcurrent(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{RateLimit: -1}
	ts := newTestServer(t, srv, clk)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Client{BaseURL: ts.URL, CacheTTL: time.Millisecond}
			for i := range 25 {
				remote := netip.AddrFrom4([4]byte{192, 0, 2, byte(g*25 + i)}).String()
				if err := c.Report(ctx, []Report{rep("10.0.0.5", remote, ClassWeb, clk.Now(), 1e5)}); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Predict(ctx, netip.MustParseAddr(remote), ClassWeb); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Hosts(ctx, 10); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := srv.Store.(*MemoryStore).Stats(); st.Reports != 100 || st.Keys[KindHost] != 100 {
		t.Fatalf("stats %+v, want 100 reports on 100 hosts", st)
	}
}
