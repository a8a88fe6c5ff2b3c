package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/metric"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Environment of TestNegotiationExperiment.
const (
	envExperiment = "E2E_EXPERIMENT" // 1 runs it
	envRuns       = "E2E_RUNS"       // slow-client page loads per policy (default 5)
	envFastRuns   = "E2E_FAST_RUNS"  // fast-client page loads per policy (default 100)
	envModes      = "E2E_MODES"      // comma-separated: squid,proxy (default both)
	envTable      = "E2E_TABLE"      // also write the markdown to this file
)

// TestNegotiationExperiment measures, in Squid mode and in proxy mode,
// the PhotoPage load time and bytes of the slow client (256 kbit/s) and
// of the fast one with the repository's policy.toml ("adapted") and with
// a policy without rules ("pass": every message unchanged). Both policies
// run on one stack, switched by SIGHUP between loads and alternated, so
// that drift of the shared machine hits both alike. Before the runs the
// slow client's first load, unknown to spand, is measured, and how long
// spand took to know it. Set E2E_EXPERIMENT=1; bench/negotiate.sh runs
// it and prints the markdown table.
func TestNegotiationExperiment(t *testing.T) {
	if os.Getenv(envExperiment) != "1" {
		t.Skipf("set %s=1 to run the experiment (minutes; see bench/negotiate.sh)", envExperiment)
	}
	runs, fastRuns := envInt(t, envRuns, 5), envInt(t, envFastRuns, 100)
	modes := []Mode{ModeSquid, ModeProxy}
	if m := os.Getenv(envModes); m != "" {
		modes = nil
		for _, s := range strings.Split(m, ",") {
			modes = append(modes, Mode(strings.TrimSpace(s)))
		}
	}
	v := newEnv(t)
	dir := t.TempDir()
	repo, err := os.ReadFile(v.policy)
	if err != nil {
		t.Fatal(err)
	}
	var results []*modeResult
	for _, mode := range modes {
		r := runMode(t, v, mode, dir, repo, runs, fastRuns)
		results = append(results, r)
		t.Logf("%s mode done", mode)
	}
	md := experimentTable(results, v.origin, runs, fastRuns, os.Getenv("E2E_TAGS"))
	fmt.Println(md)
	if p := os.Getenv(envTable); p != "" {
		if err := os.WriteFile(p, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// modeResult is what one mode measured.
type modeResult struct {
	mode Mode
	// first is the slow client's first load, unknown to spand; learn is
	// from its end until spand knew the client; warmup how many more
	// loads passed unadapted (icapd's cached "unknown").
	first  *Load
	learn  time.Duration
	rate   float64 // spand's throughput estimate, bytes/s
	warmup int
	// fastChanged counts the fast client's loads with any object that
	// differs from the origin's.
	fastChanged int
	// fastLearnLoads and fastLearnChanged: the fast client's loads while
	// spand learned both clients, and how many of them were adapted.
	fastLearnLoads, fastLearnChanged int
	// Loads by client ("slow", "fast") and policy ("adapted", "pass").
	loads map[string][]*Load
}

func runMode(t *testing.T, v *env, mode Mode, dir string, repo []byte, runs, fastRuns int) *modeResult {
	t.Helper()
	ctx := context.Background()
	page := v.origin.PageURL(PhotoPage.Name)
	policy := filepath.Join(dir, string(mode)+"-policy.toml")
	if err := os.WriteFile(policy, repo, 0o644); err != nil {
		t.Fatal(err)
	}
	s := v.stack(t, mode, policy)
	defer s.Stop()
	r := &modeResult{mode: mode, loads: map[string][]*Load{}}

	// Both users are around from the start: the fast client's first load
	// comes first, so that spand has its own reports by the time it knows
	// the slow client (a newcomer would get the estimate of the proxy's
	// /24, see the README).
	first, err := v.fast.Load(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	if c := changed(v.origin, first); c != nil {
		t.Errorf("%s: the fast client's first load: not the origin's: %s", mode, strings.Join(c, ", "))
	}
	if r.first, err = v.slow.Load(ctx, page); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: slow client's first load %v, %d bytes", mode, r.first.Duration, r.first.WireBytes)
	// The fast client browses meanwhile (spand's tracker reports a closed
	// connection 5 s of capture time after its end: someone must send),
	// until spand knows both clients from their own reports: the runs
	// measure the steady state. (A client spand has no reports of gets the
	// estimate of the proxy's /24, see the README.)
	own := func(p spand.Prediction) bool { return p.Source == "local" && p.Reports >= 2 }
	other := v.fast.Browse(ctx, page, 250*time.Millisecond)
	p, learn := s.WaitKnown(t, v.edge.Clients[0].Addr, time.Minute, own)
	s.WaitKnown(t, v.edge.Clients[1].Addr, time.Minute, own)
	early, err := other.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// icapd may hold an answer of before for spand.DefaultCacheTTL: the
	// fast client goes on until it gets the origin's bytes.
	for i := 0; ; i++ {
		if changed(v.origin, last(early)) == nil {
			break
		}
		if i == 40 {
			t.Errorf("%s: the fast client, known to spand as %+v, still gets adapted pages", mode, s.predictOrZero(v.edge.Clients[1].Addr))
			break
		}
		<-time.After(250 * time.Millisecond) // the user's pace, as in Browse
		l, err := v.fast.Load(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		early = append(early, l)
	}
	for _, l := range early {
		if changed(v.origin, l) != nil {
			r.fastLearnChanged++
		}
	}
	r.fastLearnLoads = len(early)
	r.learn, r.rate = learn, p.Throughput
	for r.warmup = 0; ; r.warmup++ {
		l, err := v.slow.Load(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		if l.HTML.Adapted != "" {
			r.loads["slow/adapted"] = append(r.loads["slow/adapted"], l)
			break
		}
		if r.warmup == 3 {
			t.Fatalf("%s: not adapted within 3 loads after spand knew the slow client (%+v)", mode, p)
		}
	}

	current := "adapted"
	set := func(name string) {
		if name == current {
			return
		}
		content := repo
		if name == "pass" {
			content = []byte("# No rules: every message passes unchanged (the experiment's baseline).\n")
		}
		n := strings.Count(s.Icapd.Log.String(), `msg="policy loaded"`)
		if err := os.WriteFile(policy, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Icapd.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for strings.Count(s.Icapd.Log.String(), `msg="policy loaded"`) <= n {
			select {
			case <-deadline:
				t.Fatalf("icapd did not reload the %s policy", name)
			case <-time.After(10 * time.Millisecond):
			}
		}
		current = name
	}
	// A fast page load takes milliseconds and the machine is shared: the
	// fast client alternates the policies load by load, in pairs.
	fastPer := max(1, fastRuns/max(1, runs))
	for i := range runs {
		order := []string{"adapted", "pass"}
		if i%2 == 1 {
			order = []string{"pass", "adapted"}
		}
		for _, pol := range order {
			set(pol)
			if i > 0 || pol != "adapted" { // the first adapted slow load was the warm-up's last
				l, err := v.slow.Load(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				r.loads["slow/"+pol] = append(r.loads["slow/"+pol], l)
			}
			t.Logf("%s run %d %s: slow %v", mode, i+1, pol, last(r.loads["slow/"+pol]).Duration)
		}
		for j := range fastPer {
			for _, pol := range order {
				if j%2 == 1 {
					pol = otherPolicy(pol)
				}
				set(pol)
				l, err := v.fast.Load(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				r.loads["fast/"+pol] = append(r.loads["fast/"+pol], l)
			}
		}
	}
	// The measurement must measure what it claims.
	for _, l := range r.loads["slow/adapted"] {
		if l.HTML.Adapted == "" {
			t.Errorf("%s: an adapted-policy load of the slow client was not adapted", mode)
		}
	}
	for _, key := range []string{"slow/pass", "fast/pass", "fast/adapted"} {
		for i, l := range r.loads[key] {
			if c := changed(v.origin, l); len(c) > 0 {
				t.Errorf("%s %s load %d: not the origin's: %s", mode, key, i+1, strings.Join(c, ", "))
				if strings.HasPrefix(key, "fast/") {
					r.fastChanged++
				}
			}
		}
	}
	return r
}

func otherPolicy(p string) string {
	if p == "pass" {
		return "adapted"
	}
	return "pass"
}

// changed describes the objects of l that differ from the origin's.
func changed(o *Origin, l *Load) []string {
	var out []string
	for _, obj := range l.Objects() {
		if want, ok := o.Digest(obj.URL); ok && obj.SHA256 != want {
			out = append(out, fmt.Sprintf("%s (%d bytes, X-Adapted %q)", obj.URL, obj.Bytes, obj.Adapted))
		}
	}
	return out
}

func last(ls []*Load) *Load {
	if len(ls) == 0 {
		return &Load{}
	}
	return ls[len(ls)-1]
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// experimentTable renders the results as markdown.
func experimentTable(rs []*modeResult, o *Origin, runs, fastRuns int, tags string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	engine := "pure Go image engine"
	if strings.Contains(tags, "vips") {
		engine = "libvips image engine (-tags vips)"
	}
	p("Page %q: %d images, %s; slow client 256 kbit/s (tbf), fast client unshaped; %s.", PhotoPage.Name, len(PhotoPage.Images), "HTML + every image over 6 connections", engine)
	p("Medians of %d slow-client and %d fast-client page loads per policy; \"adapted\" = the repository's policy.toml, \"pass\" = a policy without rules.", runs, fastRuns)
	p("")
	p("| mode | client | policy | page load (median) | min – max | bytes read (median) |")
	p("|---|---|---|---:|---:|---:|")
	for _, r := range rs {
		for _, key := range []string{"slow/adapted", "slow/pass", "fast/adapted", "fast/pass"} {
			ls := r.loads[key]
			client, pol, _ := strings.Cut(key, "/")
			d := durations(ls)
			p("| %s | %s | %s | %s | %s – %s | %s |", r.mode, client, pol, secs(metric.Median(d)), secs(minOf(d)), secs(maxOf(d)), kb(metric.Median(wires(ls))))
		}
	}
	p("")
	p("| mode | slow: time pass / adapted | slow: bytes pass / adapted | fast: time adapted / pass (medians; median of paired ratios) | fast loads not byte-identical | fast loads adapted while spand learned | slow client's first load | spand knew it after | its estimate | unadapted loads after that |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		sa, sp := r.loads["slow/adapted"], r.loads["slow/pass"]
		fa, fp := r.loads["fast/adapted"], r.loads["fast/pass"]
		p("| %s | %.1fx | %.1fx | %.3f; %.3f | %d of %d | %d of %d | %s, %s | %s | %.0f kbit/s | %d |", r.mode,
			metric.Median(durations(sp))/metric.Median(durations(sa)), metric.Median(wires(sp))/metric.Median(wires(sa)),
			metric.Median(durations(fa))/metric.Median(durations(fp)), metric.Median(ratios(durations(fa), durations(fp))), r.fastChanged, len(fa)+len(fp), r.fastLearnChanged, r.fastLearnLoads,
			secs(r.first.Duration.Seconds()), kb(float64(r.first.WireBytes)), secs(r.learn.Seconds()), r.rate*8/1000, r.warmup)
	}
	for _, r := range rs {
		l := last(r.loads["slow/adapted"])
		p("")
		p("What the slow client received in its last adapted load (%s mode):", r.mode)
		p("")
		p("| object | original | received | as | X-Adapted |")
		p("|---|---:|---:|---|---|")
		for _, obj := range l.Objects() {
			as := obj.ContentType
			if obj.Format != "" {
				as = fmt.Sprintf("%s %dx%d", obj.Format, obj.Width, obj.Height)
			}
			if obj.Encoding != "" {
				as += ", " + obj.Encoding
			}
			name := obj.URL[strings.LastIndexByte(obj.URL, '/')+1:]
			p("| %s | %s | %s | %s | %s |", name, kb(float64(o.Size(obj.URL))), kb(float64(obj.Bytes)), as, obj.Adapted)
		}
	}
	return b.String()
}

func durations(ls []*Load) []float64 {
	out := make([]float64, len(ls))
	for i, l := range ls {
		out[i] = l.Duration.Seconds()
	}
	return out
}

func wires(ls []*Load) []float64 {
	out := make([]float64, len(ls))
	for i, l := range ls {
		out[i] = float64(l.WireBytes)
	}
	return out
}

// ratios returns a[i]/b[i] for the pairs both have.
func ratios(a, b []float64) []float64 {
	out := make([]float64, min(len(a), len(b)))
	for i := range out {
		out[i] = a[i] / b[i]
	}
	return out
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Min(xs)
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

func secs(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}

func kb(n float64) string { return fmt.Sprintf("%.1f KB", n/1000) }
