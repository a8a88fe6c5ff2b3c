package icapd

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// goldenTransactions exercise every part of the exposition: several
// services and methods, statuses in and out of the usual range, and
// durations on, just above and beyond the bucket bounds.
func goldenTransactions() []Transaction {
	var txs []Transaction
	durs := []time.Duration{0, 1, 99 * time.Microsecond, 100 * time.Microsecond, 100*time.Microsecond + 1,
		250 * time.Microsecond, 2500 * time.Microsecond, 5 * time.Millisecond, 5*time.Millisecond + 1, 99 * time.Millisecond,
		time.Second, time.Second + 1, 2500 * time.Millisecond, 10 * time.Second, 10*time.Second + 1, time.Hour, 123456789}
	statuses := []int{200, 204, 206, 200, 0, 400, 404, 405, 999, 204, 503, 505, 100, 200, 206, 501, 408}
	services := []string{"/echo", "/respmod", "/reqmod", "other", "/a\"b"}
	methods := []string{"RESPMOD", "REQMOD", "OPTIONS", "other"}
	for i, d := range durs {
		for j, s := range services {
			m := methods[(i+j)%len(methods)]
			txs = append(txs, Transaction{Service: s, Method: m, Status: statuses[(i*3+j)%len(statuses)],
				BytesIn: int64(i*1000 + j), BytesOut: int64(j*7 + i), Duration: d})
		}
	}
	return txs
}

// TestMetricsGolden checks the exposition byte for byte against
// testdata/metrics.golden, written by the map-and-lock implementation the
// per-series counters replaced (only the uptime value differs per run).
func TestMetricsGolden(t *testing.T) {
	m := NewMetrics()
	m.ConnOpened()
	m.ConnRefused()
	for _, tx := range goldenTransactions() {
		m.Observe(tx)
	}
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`(?m)^icapd_uptime_seconds .*$`).ReplaceAllString(b.String(), "icapd_uptime_seconds X")
	path := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("exposition differs from %s at line %d:\ngot  %q\nwant %q", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("exposition has %d lines, %s has %d", len(gl), path, len(wl))
	}
}
