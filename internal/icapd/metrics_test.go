package icapd

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed()
	m.ConnRefused()
	for _, tx := range []Transaction{
		{Service: "/echo", Method: "RESPMOD", Status: 204, BytesIn: 1000, BytesOut: 50, Duration: 300 * time.Microsecond},
		{Service: "/echo", Method: "RESPMOD", Status: 204, BytesIn: 1000, BytesOut: 50, Duration: 2 * time.Millisecond},
		{Service: "/echo", Method: "RESPMOD", Status: 206, BytesIn: 2000, BytesOut: 70, Duration: 20 * time.Second},
		{Service: "/echo", Method: "RESPMOD", Status: 200, BytesIn: 4000, BytesOut: 4000, Duration: time.Millisecond},
		{Service: "/echo", Method: "OPTIONS", Status: 200, BytesIn: 40, BytesOut: 300, Duration: 50 * time.Microsecond},
	} {
		m.Observe(tx)
	}
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`icapd_requests_total{service="/echo",method="RESPMOD",status="204"} 2`,
		`icapd_requests_total{service="/echo",method="RESPMOD",status="206"} 1`,
		`icapd_requests_total{service="/echo",method="OPTIONS",status="200"} 1`,
		// OPTIONS does not count in the ratios: 2 of 4, 1 of 4.
		`icapd_response_204_ratio{service="/echo"} 0.5`,
		`icapd_response_206_ratio{service="/echo"} 0.25`,
		`icapd_request_duration_seconds_bucket{service="/echo",method="RESPMOD",le="0.0005"} 1`,
		`icapd_request_duration_seconds_bucket{service="/echo",method="RESPMOD",le="0.001"} 2`,
		`icapd_request_duration_seconds_bucket{service="/echo",method="RESPMOD",le="10"} 3`,
		`icapd_request_duration_seconds_bucket{service="/echo",method="RESPMOD",le="+Inf"} 4`,
		`icapd_request_duration_seconds_count{service="/echo",method="RESPMOD"} 4`,
		`icapd_request_duration_seconds_sum{service="/echo",method="RESPMOD"} 20.0033`,
		`icapd_received_bytes_total{service="/echo",method="RESPMOD"} 8000`,
		`icapd_sent_bytes_total{service="/echo",method="RESPMOD"} 4170`,
		"icapd_open_connections 1\n",
		"icapd_connections_accepted_total 2\n",
		"icapd_connections_refused_total 1\n",
		"# TYPE icapd_request_duration_seconds histogram\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if got := m.Requests("/echo", "", 204); got != 2 {
		t.Errorf("Requests(/echo, any, 204) = %d, want 2", got)
	}
	// Every non-comment line is "name{labels} value" or "name value".
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if f := strings.Fields(l); len(f) != 2 {
			t.Errorf("malformed sample line %q", l)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestBucketOf checks the branch-free bucket search against a binary
// search of the bounds in seconds (what the histogram did before), on
// every bound, a nanosecond either side, and beyond the range.
func TestBucketOf(t *testing.T) {
	ds := []time.Duration{-time.Hour, math.MinInt64, -1, 0, 1, math.MaxInt64, time.Hour}
	for _, ub := range latencyBucketsNs {
		ds = append(ds, time.Duration(ub-1), time.Duration(ub), time.Duration(ub+1))
	}
	for _, d := range ds {
		want, _ := slices.BinarySearch(latencyBuckets[:], max(d, 0).Seconds())
		if got := bucketOf(d); got != want {
			t.Errorf("bucketOf(%v) = %d, want %d", d, got, want)
		}
	}
}

// TestMetricsConcurrent observes from several goroutines while another
// scrapes, and checks that nothing is lost (run with -race to check the
// locking).
func TestMetricsConcurrent(t *testing.T) {
	m := NewMetrics()
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				scraped <- n
				return
			default:
				m.WriteTo(io.Discard)
				n++
			}
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.Observe(Transaction{Service: fmt.Sprintf("/s%d", i%3), Method: "RESPMOD", Status: 200 + 4*(w%2), BytesIn: 1, Duration: time.Duration(i) * time.Microsecond})
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-scraped; n == 0 {
		t.Error("no scrape ran during the observations")
	}
	var total int64
	for _, s := range []string{"/s0", "/s1", "/s2"} {
		total += m.Requests(s, "", 200) + m.Requests(s, "RESPMOD", 204)
	}
	if total != workers*each {
		t.Errorf("counted %d transactions, want %d", total, workers*each)
	}
}

// TestDaemonMetricsLabels checks the daemon's pre-resolved series: unknown
// services and methods count as "other", and services that have served
// nothing are not in the exposition.
func TestDaemonMetricsLabels(t *testing.T) {
	d, err := New(Config{AccessLog: "off"}, nil, DefaultServices()...)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	d.Metrics.WriteTo(&b)
	if strings.Contains(b.String(), "icapd_requests_total{") || strings.Contains(b.String(), "icapd_request_duration_seconds_bucket{") {
		t.Errorf("series before any transaction:\n%s", b.String())
	}
	for _, ti := range []icap.TransactionInfo{
		{Method: "OPTIONS", Service: EchoPath, Status: 200},
		{Method: "RESPMOD", Service: EchoPath, Status: 204},
		{Method: "GET", Service: EchoPath, Status: 501},
		{Method: "REQMOD", Service: "/nope", Status: 404},
		{Method: "", Service: "", Status: 400},
	} {
		d.observe(&ti)
	}
	for _, c := range []struct {
		service, method string
		status          int
		want            int64
	}{
		{EchoPath, "OPTIONS", 200, 1}, {EchoPath, "RESPMOD", 204, 1}, {EchoPath, "other", 501, 1},
		{"other", "REQMOD", 404, 1}, {"other", "other", 400, 1}, {"/nope", "", 404, 0}, {EchoPath, "GET", 501, 0},
	} {
		if got := d.Metrics.Requests(c.service, c.method, c.status); got != c.want {
			t.Errorf("Requests(%q, %q, %d) = %d, want %d", c.service, c.method, c.status, got, c.want)
		}
	}
	b.Reset()
	d.Metrics.WriteTo(&b)
	if got := strings.Count(b.String(), "icapd_request_duration_seconds_count{"); got != 5 {
		t.Errorf("exposition has %d histograms, want 5 (/echo OPTIONS, RESPMOD and other; other REQMOD and other)\n%s", got, b.String())
	}
}
