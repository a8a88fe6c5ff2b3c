package systest

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/metric"
	"github.com/edgeadapt/edgeadapt/internal/squidtest"
)

// Load test settings.
const (
	// DefaultLoadDuration is the wrk run of TestLoad in CI;
	// SYSTEST_LOAD_DURATION (a Go duration, e.g. 5m) overrides it.
	DefaultLoadDuration = 25 * time.Second
	// loadConns is wrk's number of connections.
	loadConns = 100
	// rssInterval paces the sampling of icapd's resident size.
	rssInterval = 500 * time.Millisecond
	// maxRSSGrowth bounds how far the median RSS of the last third of the
	// run may lie above the median of the first third: a leak of a few
	// KB per request shows over thousands of requests.
	maxRSSGrowth = 48 << 20
)

func loadDuration(t testing.TB) time.Duration {
	s := os.Getenv("SYSTEST_LOAD_DURATION")
	if s == "" {
		return DefaultLoadDuration
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 5*time.Second {
		t.Fatalf("SYSTEST_LOAD_DURATION=%q: want a Go duration of at least 5s", s)
	}
	return d
}

// icapServices are Squid's two services on icapd's /reqmod and /respmod.
func icapServices(d *icapd, bypass bool) []squidtest.Service {
	return []squidtest.Service{
		{Name: "edge_req", Point: squidtest.ReqmodPrecache, URL: "icap://" + d.icapAddr + "/reqmod", Bypass: bypass},
		{Name: "edge_resp", Point: squidtest.RespmodPrecache, URL: "icap://" + d.icapAddr + "/respmod", Bypass: bypass},
	}
}

// rssSampler samples a process's VmRSS until stopped.
type rssSampler struct {
	mu      sync.Mutex
	samples []float64
	stop    chan struct{}
	done    chan struct{}
}

func sampleRSS(t testing.TB, p *proc) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(rssInterval)
		defer tick.Stop()
		for {
			rss, _ := p.memStatus(t)
			s.mu.Lock()
			s.samples = append(s.samples, float64(rss))
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// thirds stops the sampler and returns the medians of the first and
// last thirds of the samples, and the largest sample.
func (s *rssSampler) thirds() (first, last, peak float64, n int) {
	close(s.stop)
	<-s.done
	xs := s.samples
	n = len(xs)
	for _, x := range xs {
		peak = max(peak, x)
	}
	k := n / 3
	return metric.Median(xs[:k]), metric.Median(xs[n-k:]), peak, n
}

// checker fetches the pass-through objects of the mix through Squid in a
// loop, next to the load, and checks every body byte for byte.
type checker struct {
	checks, bad atomic.Int64
	mu          sync.Mutex
	failures    []fetchResult
}

func (c *checker) run(ctx context.Context, o *mixOrigin, sq *squidtest.Squid) {
	client := sq.Client()
	for i := 0; ctx.Err() == nil; i++ {
		m := loadMix[i%len(loadMix)]
		if !o.objects[m.Path].pass && m.Header != "" {
			continue
		}
		r := o.fetch(client, m)
		c.checks.Add(1)
		if r.err != nil || r.status != 200 || !r.intact || r.adapted {
			c.bad.Add(1)
			c.mu.Lock()
			if len(c.failures) < 10 {
				c.failures = append(c.failures, r)
			}
			c.mu.Unlock()
		}
	}
}

// TestLoad runs wrk through Squid into icapd (the built binary, the
// repository's policy) with 100 connections on a mix of pass-through and
// adapted objects: wrk sees no failed request, a Go client fetching the
// pass-through objects meanwhile gets every body byte-identical, and
// icapd's resident size stays flat.
func TestLoad(t *testing.T) {
	dur := loadDuration(t)
	o := newMixOrigin(t)
	d := startICAPD(t, "-listen", "127.0.0.1:0", "-access-log", "off")
	sq := squidtest.Start(t, squidtest.Config{Services: icapServices(d, false)})

	// Warm up: every entry once, and the adapted ones really adapted
	// (their bodies differ from the origin's; an early-committed image
	// carries no X-Adapted, its header having gone out before the
	// transcode), the others intact and claiming nothing.
	client := sq.Client()
	for _, m := range loadMix {
		r := o.fetch(client, m)
		pass := o.objects[m.Path].pass || m.Header == ""
		if r.err != nil || r.status != 200 || r.intact != pass || pass && r.adapted {
			t.Fatalf("warm-up %s %q: status %d, err %v, intact %v, adapted %v; want pass-through %v", m.Path, m.Header, r.status, r.err, r.intact, r.adapted, pass)
		}
	}
	before := d.metrics(t)

	rss := sampleRSS(t, d.proc)
	ctx, cancel := context.WithCancel(context.Background())
	var chk checker
	chkDone := make(chan struct{})
	go func() { defer close(chkDone); chk.run(ctx, o, sq) }()
	res, err := runWrk(context.Background(), t, sq.Addr, o.srv.URL, loadMix, loadConns, dur)
	wrkEnd := time.Now().Add(-time.Second) // wrk aborts what is in flight when it stops
	cancel()
	<-chkDone
	first, last, peak, samples := rss.thirds()
	if err != nil {
		t.Fatal(err)
	}
	after := d.metrics(t)
	t.Logf("wrk output:\n%s", res.Output)

	adapted := sum(after, "icapd_transcode_adapted_total") - sum(before, "icapd_transcode_adapted_total")
	passed := sum(after, "icapd_transcode_passed_total") - sum(before, "icapd_transcode_passed_total")
	figure(t, "duration, connections", "%v, %d", dur, loadConns)
	figure(t, "requests (wrk)", "%d (%.0f/s)", res.Requests, float64(res.Requests)/res.Duration.Seconds())
	figure(t, "failed requests (non-2xx, socket errors)", "%d (non-2xx %d, connect %d, read %d, write %d, timeout %d)",
		res.Errors(), res.Non2xx, res.Connect, res.Read, res.Write, res.Timeout)
	figure(t, "latency p50 / p90 / p99 / max", "%v / %v / %v / %v", res.P50, res.P90, res.P99, res.Max)
	figure(t, "transcodes adapted / passed", "%.0f / %.0f", adapted, passed)
	figure(t, "pass-through bodies checked (Go client)", "%d, %d not identical", chk.checks.Load(), chk.bad.Load())
	figure(t, "icapd RSS median first / last third, peak", "%s / %s, %s (%d samples)", mib(first), mib(last), mib(peak), samples)

	if res.Requests < int64(len(loadMix)) {
		t.Errorf("wrk made %d requests", res.Requests)
	}
	counts, _ := squidOutcomes(sq, wrkEnd)
	figure(t, "Squid access.log result codes", "%v", counts)
	if res.Errors() != 0 {
		var warn []string
		for _, l := range strings.Split(d.log.String(), "\n") {
			if strings.Contains(l, "level=WARN") && !strings.Contains(l, "passing original") || strings.Contains(l, "level=ERROR") {
				warn = append(warn, l)
			}
		}
		// Every odd line, those after wrkEnd too: a failure in wrk's last
		// second is otherwise hidden. Two NONE_NONE/000
		// error:transaction-end-before-headers lines are in every run:
		// squidtest's readiness dial and wrk's own connect probe (its
		// resolve step) open and close a connection without a request.
		_, odd := squidOutcomes(sq, time.Now())
		t.Errorf("%d failed requests under load, want 0\nSquid access.log, not TCP_MISS/200 (wrk stopped about %.3f):\n%s\nicap_log errors:\n%s\nicapd warnings:\n%s",
			res.Errors(), float64(wrkEnd.Add(time.Second).UnixMilli())/1e3, strings.Join(odd, "\n"), strings.Join(icapErrors(sq), "\n"),
			tail(strings.Join(warn, "\n"), 4000))
	}
	if chk.checks.Load() == 0 || chk.bad.Load() != 0 {
		t.Errorf("pass-through checks: %d of %d failed: %+v", chk.bad.Load(), chk.checks.Load(), chk.failures)
	}
	if adapted == 0 {
		t.Error("no transcode adapted anything during the load: the mix has no adapted objects")
	}
	if samples < 6 {
		t.Fatalf("%d RSS samples", samples)
	}
	if last > first+maxRSSGrowth {
		t.Errorf("icapd RSS grew from a median of %s (first third) to %s (last third), more than %s", mib(first), mib(last), mib(maxRSSGrowth))
	}
}
