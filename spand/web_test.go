package spand

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/dashboard"
	"github.com/edgeadapt/edgeadapt/internal/dashboard/browsertest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

func TestAggregatorHistory(t *testing.T) {
	a, clk := newTestAggregator(Config{MaxSamples: 4, MaxAge: time.Hour})
	now := clk.Now()
	// Added out of order, one expired, one over the ring's bound.
	for _, m := range []int{30, 10, 20, 90, 5, 1} {
		a.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, now.Add(-time.Duration(m)*time.Minute), float64(1000*m)))
	}
	k := Key{KindHost, netip.MustParsePrefix("192.0.2.10/32"), ClassWeb}
	h := a.History(k)
	var got []float32
	for _, s := range h {
		got = append(got, s.Throughput)
	}
	// 90 min is past MaxAge (dropped); the ring kept the last 4 received
	// (10, 20, 5, 1 min ago). Oldest first.
	if want := []float32{20000, 10000, 5000, 1000}; !slicesEqual(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
	clk.Advance(45 * time.Minute) // 20 min ago is now past MaxAge
	got = got[:0]
	for _, s := range a.History(k) {
		got = append(got, s.Throughput)
	}
	if want := []float32{10000, 5000, 1000}; !slicesEqual(got, want) {
		t.Errorf("history after 45 min %v, want %v", got, want)
	}
	if a.History(Key{KindHost, netip.MustParsePrefix("192.0.2.99/32"), ClassWeb}) != nil {
		t.Error("unknown key has a history")
	}
	if a.History(Key{Kind: KindNone}) != nil || a.History(Key{Kind: 200}) != nil {
		t.Error("bad kind has a history")
	}
	for _, p := range a.Entries(0) {
		k, err := KeyOf(&p)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.History(k)) == 0 {
			t.Errorf("KeyOf(%s %s) = %s: no history", p.Source, p.Key, k)
		}
	}
	if _, err := KeyOf(&Prediction{Source: "none"}); err == nil {
		t.Error("KeyOf of an unanswered prediction")
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// storeWithoutHistory hides MemoryStore's History.
type storeWithoutHistory struct{ Store }

func TestHistoryEndpoint(t *testing.T) {
	clk := newFakeClock()
	ts := newTestServer(t, &Server{}, clk)
	c := &Client{BaseURL: ts.URL}
	ctx := context.Background()
	now := clk.Now()
	if err := c.Report(ctx, []Report{
		rep("10.0.0.5", "192.0.2.10", ClassWeb, now.Add(-2*time.Minute), 1e5),
		rep("10.0.0.5", "192.0.2.10", ClassWeb, now.Add(-time.Minute), 2e5),
	}); err != nil {
		t.Fatal(err)
	}
	host := Key{KindHost, netip.MustParsePrefix("192.0.2.10/32"), ClassWeb}
	local := Key{KindLocal, netip.MustParsePrefix("10.0.0.5/32"), ClassWeb}
	unknown := Key{KindHost, netip.MustParsePrefix("192.0.2.99/32"), ClassBulk}
	h, err := c.History(ctx, []Key{host, local, unknown})
	if err != nil {
		t.Fatal(err)
	}
	if len(h[host]) != 2 || h[host][0].Throughput != 1e5 || h[host][1].Throughput != 2e5 || len(h[local]) != 2 {
		t.Errorf("history %+v", h)
	}
	if s, ok := h[unknown]; !ok || len(s) != 0 {
		t.Errorf("unknown key: %v %v", s, ok)
	}
	for _, q := range []string{"", "?key=nonsense", "?key=" + strings.Repeat("x", 3)} {
		resp, body := get(t, ts.URL+"/v1/history"+q)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /v1/history%s: %d %s", q, resp.StatusCode, body)
		}
	}
	if _, err := c.History(ctx, make([]Key, MaxHistoryKeys+1)); err == nil {
		t.Error("too many keys accepted")
	}

	m, _ := NewMemoryStore(Config{}, "")
	ts2 := newTestServer(t, &Server{Store: storeWithoutHistory{m}}, clk)
	_, err = (&Client{BaseURL: ts2.URL}).History(ctx, []Key{host})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotImplemented {
		t.Errorf("store without history: %v", err)
	}
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, b := testenv.Get(t, http.DefaultClient, u, nil)
	return resp, string(b)
}

// webReports are the reports the web page tests send: two clients with a
// history each, one of them on two classes.
func webReports(now time.Time) []Report {
	var rs []Report
	for i := range 8 {
		end := now.Add(-time.Duration(8-i) * time.Minute)
		rs = append(rs, rep("10.1.0.7", "198.51.100.20", ClassWeb, end, 32000+float64(i%3)*4000))
		rs = append(rs, rep("10.1.0.8", "203.0.113.5", ClassBulk, end, 1.2e6+float64(i)*1e4))
	}
	return rs
}

func TestWebPage(t *testing.T) {
	clk := newFakeClock()
	ts := newTestServer(t, &Server{}, clk)
	resp, body := get(t, ts.URL+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "No host measured yet") || !strings.Contains(body, "No capture is running") {
		t.Fatalf("empty page: %d\n%s", resp.StatusCode, body)
	}
	if err := (&Client{BaseURL: ts.URL}).Report(context.Background(), webReports(clk.Now())); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, ts.URL+"/?refresh=0")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("page: %d %v", resp.StatusCode, resp.Header)
	}
	for _, want := range []string{"10.1.0.7", "198.51.100.20", "10.1.0.8", "198.51.100.0/24", "Per class", "bulk", "Reports received", "<svg"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "http-equiv") {
		t.Error("refresh=0 still refreshes")
	}
	// 2 clients x (host, local, prefix) = 6 keys, each with a chart.
	if n := strings.Count(body, "<svg"); n != 6 {
		t.Errorf("%d charts, want 6", n)
	}
	_, body = get(t, ts.URL+"/?hosts=2")
	if n := strings.Count(body, "<svg"); n != 2 || !strings.Contains(body, "The first 2 of 6 keys") {
		t.Errorf("?hosts=2: %d charts", n)
	}
	for _, q := range []string{"?hosts=0", "?hosts=x", "?refresh=-1"} {
		if resp, _ := get(t, ts.URL+"/"+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /%s: %d", q, resp.StatusCode)
		}
	}
	if resp, _ := get(t, ts.URL+"/nothing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404 (the page is / only)", resp.StatusCode)
	}
}

// TestWebPageInChromium is the end-to-end test of spand's page: reports
// posted over HTTP to a server on loopback, the page loaded in headless
// Chromium, which must show the hosts the reports made and log no error.
// The screenshot is kept under $TEST_ARTIFACTS.
func TestWebPageInChromium(t *testing.T) {
	browsertest.Chromium(t)
	clk := newFakeClock()
	ts := newTestServer(t, &Server{ExtraMetrics: func(w io.Writer) {
		io.WriteString(w, "# HELP spand_capture_packets_read_total Packets read from the capture source.\nspand_capture_packets_read_total 4242\n")
	}}, clk)
	if err := (&Client{BaseURL: ts.URL}).Report(context.Background(), webReports(clk.Now())); err != nil {
		t.Fatal(err)
	}
	browsertest.CheckPage(t, ts.URL+"/?refresh=0", browsertest.Expect{
		Contains:   []string{"10.1.0.7", "10.1.0.8", "198.51.100.20", "203.0.113.5", "Packets read from the capture source.", "4\u202f242"},
		Charts:     6,
		Screenshot: "spand-web.png",
	})
}

// TestClassBreakdown checks the per-class table: classes by reports,
// then name; the medians over the keys of an even count are the mean of
// the middle two (metric.Median); a class without an RTT shows "–".
func TestClassBreakdown(t *testing.T) {
	entries := []Prediction{
		{Class: ClassWeb, Reports: 2, Throughput: 1000, RTT: 10},
		{Class: ClassWeb, Reports: 3, Throughput: 8000, RTT: 30},
		{Class: ClassWeb, Reports: 1, Throughput: 2000},
		{Class: ClassWeb, Reports: 1, Throughput: 4000, RTT: 20},
		{Class: ClassBulk, Reports: 9, Throughput: 5e5},
	}
	got := ClassBreakdown(entries).Rows
	want := [][]string{
		{string(ClassBulk), "1", "9", dashboard.FormatBitrate(5e5), "–"},
		{string(ClassWeb), "4", "7", dashboard.FormatBitrate(3000), dashboard.FormatRTT(20 * time.Millisecond)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n%q\nwant\n%q", got, want)
	}
}
