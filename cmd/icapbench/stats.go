package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/metric"
)

// workerStats is what one connection's loop records; merged at the end so
// the hot path shares nothing.
type workerStats struct {
	latencies []time.Duration
	status    map[int]int64
	errors    int64
	bytesOut  int64 // encapsulated body bytes sent
	bytesIn   int64 // encapsulated body bytes received
	lastErr   error
}

func newWorkerStats() *workerStats {
	return &workerStats{status: make(map[int]int64), latencies: make([]time.Duration, 0, 1<<14)}
}

// Report is icapbench's result (the -json output).
type Report struct {
	Addr        string           `json:"addr"`
	Service     string           `json:"service"`
	Method      string           `json:"method"`
	Concurrency int              `json:"concurrency"`
	BodySize    int64            `json:"body_size"`
	Preview     int              `json:"preview"`
	Allow204    bool             `json:"allow204"`
	Seconds     float64          `json:"seconds"`
	Requests    int64            `json:"requests"`
	Errors      int64            `json:"errors"`
	LastError   string           `json:"last_error,omitempty"`
	ReqPerSec   float64          `json:"req_per_sec"`
	MBPerSec    float64          `json:"mb_per_sec"` // body bytes sent, 1 MB = 1e6 bytes
	MBInPerSec  float64          `json:"mb_in_per_sec"`
	P50Ms       float64          `json:"p50_ms"`
	P90Ms       float64          `json:"p90_ms"`
	P99Ms       float64          `json:"p99_ms"`
	MaxMs       float64          `json:"max_ms"`
	Status      map[string]int64 `json:"status"`
}

// merge folds the workers' stats into a report over elapsed time.
func merge(r *Report, ws []*workerStats, elapsed time.Duration) {
	var all []time.Duration
	var out, in int64
	r.Status = make(map[string]int64)
	for _, w := range ws {
		all = append(all, w.latencies...)
		out += w.bytesOut
		in += w.bytesIn
		r.Errors += w.errors
		if w.lastErr != nil {
			r.LastError = w.lastErr.Error()
		}
		for code, n := range w.status {
			r.Status[strconv.Itoa(code)] += n
		}
	}
	slices.Sort(all)
	r.Requests = int64(len(all))
	r.Seconds = elapsed.Seconds()
	if r.Seconds > 0 {
		r.ReqPerSec = float64(r.Requests) / r.Seconds
		r.MBPerSec = float64(out) / 1e6 / r.Seconds
		r.MBInPerSec = float64(in) / 1e6 / r.Seconds
	}
	r.P50Ms = ms(metric.Percentile(all, 0.50))
	r.P90Ms = ms(metric.Percentile(all, 0.90))
	r.P99Ms = ms(metric.Percentile(all, 0.99))
	if len(all) > 0 {
		r.MaxMs = ms(all[len(all)-1])
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// write prints the report as text or JSON.
func (r *Report) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	var codes []string
	for k := range r.Status {
		codes = append(codes, k)
	}
	slices.Sort(codes)
	var st []string
	for _, c := range codes {
		st = append(st, fmt.Sprintf("%s=%d", c, r.Status[c]))
	}
	_, err := fmt.Fprintf(w, `target     icap://%s%s %s, body %d B, preview %d, allow204 %v, c=%d
requests   %d in %.2fs (%d errors)
rate       %.0f req/s, %.1f MB/s sent, %.1f MB/s received
latency    p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms
status     %s
`, r.Addr, r.Service, r.Method, r.BodySize, r.Preview, r.Allow204, r.Concurrency,
		r.Requests, r.Seconds, r.Errors, r.ReqPerSec, r.MBPerSec, r.MBInPerSec,
		r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, strings.Join(st, " "))
	if err == nil && r.LastError != "" {
		_, err = fmt.Fprintf(w, "last error %s\n", r.LastError)
	}
	return err
}
