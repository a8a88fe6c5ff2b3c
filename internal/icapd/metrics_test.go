package icapd

import (
	"strings"
	"testing"
	"time"
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
