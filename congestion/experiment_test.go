package congestion

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion/internal/metric"
)

// measure runs flows for cfg.dur and returns each flow's goodput (bit/s)
// after the warm-up, and the tbf's sent bytes over the same span.
func measure(b *bench, cfg expConfig, flows []*benchFlow) (goodputs []float64, from, to time.Time) {
	b.wait(cfg.dur)
	from, to = b.start.Add(cfg.warmup()), b.start.Add(cfg.dur)
	for _, f := range flows {
		goodputs = append(goodputs, f.goodput(from, to))
	}
	return goodputs, from, to
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// capacity is the most TCP payload the bottleneck can carry, in bit/s.
const capacity = benchRate * payloadShare

// TestExperimentE1Fairness: 4 flows to one host through the manager
// against 1 ordinary flow; the baseline runs the same 5 flows without it.
// The ordinary flow runs CUBIC, so the macroflow runs the Cubic
// controller: a macroflow should take what one flow of the same kind
// takes. The AIMD row (RFC 3124's default controller, which halves where
// CUBIC keeps 70%) is reported besides, in the full run only.
//
// The hog_ rows (full run; CM_HOG processes, default 2, 0 leaves them
// out) repeat the Cubic and baseline runs while as many busy-looping
// processes as there are cores compete for the CPU: the manager's gate
// opens when its poller reads the ACKs, not when they arrive, so a busy
// machine delays grants while the ordinary flow stays ACK-clocked in the
// kernel. They are reported, not judged: the target is for the bench.
func TestExperimentE1Fairness(t *testing.T) {
	cfg := experimentConfig(t, 8*time.Second)
	type mode struct {
		prefix string // of the figures
		cm     bool
		ctrl   func(ControllerConfig) Controller
		hog    bool
	}
	modes := []mode{{"", true, validatedCubic, false}, {"baseline_", false, nil, false}}
	hogs := 0
	if cfg.full {
		modes = append(modes, mode{"aimd_", true, validatedAIMD, false})
		hogs = 2
		if v := os.Getenv("CM_HOG"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("CM_HOG=%q: want a number of processes", v)
			}
			hogs = n
		}
		if hogs > 0 {
			modes = append(modes, mode{"hog_", true, validatedCubic, true}, mode{"hog_baseline_", false, nil, true})
		}
	}
	var fs figures
	for run := range cfg.runs {
		for _, md := range modes {
			var stopHog func()
			if md.hog {
				stopHog = cpuHog(t, hogs)
			}
			b := newBench(t, 2, Config{NewController: md.ctrl})
			var flows []*benchFlow
			for i := range 4 {
				var info *FlowInfo
				if md.cm {
					info = &FlowInfo{}
				}
				flows = append(flows, b.addFlow(fmt.Sprintf("cm%d", i), 0, info))
			}
			flows = append(flows, b.addFlow("plain", 1, nil))
			g, from, to := measure(b, cfg, flows)
			b.close()
			if stopHog != nil {
				stopHog()
			}
			for _, f := range flows {
				diag(t, f, from, to)
			}
			macro := sum(g[:4])
			fs.add(md.prefix+"share%", 100*macro/sum(g))
			if md.cm {
				fs.add(md.prefix+"jain_hosts", metric.Jain([]float64{macro, g[4]}))
				fs.add(md.prefix+"jain_cm", metric.Jain(g[:4]))
			}
			fs.add(md.prefix+"goodput%", 100*sum(g)/capacity)
			t.Logf("run %d %sshare goodputs %.0f", run, md.prefix, g)
		}
	}
	shareLo, shareHi, jainMin, goodMin := 40.0, 60.0, 0.95, 95.0
	if !cfg.full {
		// The short run is a smoke test: on a loaded 2-core machine a
		// user-space poller loses to kernel TCP, so only starvation
		// either way fails it.
		shareLo, shareHi, jainMin, goodMin = 10, 90, 0.6, 80
	}
	report(t, "E1", &fs, cfg, fmt.Sprintf("share=%.0f-%.0f%%,jain>=%.2f,goodput>=%.0f%%", shareLo, shareHi, jainMin, goodMin), map[string]bool{
		"share":   fs.med("share%") >= shareLo && fs.med("share%") <= shareHi,
		"jain":    fs.med("jain_hosts") >= jainMin && fs.med("jain_cm") >= max(jainMin, 0.9),
		"goodput": fs.med("goodput%") >= goodMin,
	})
}

// windows splits [from, to) into windows of length w.
func windows(from, to time.Time, w time.Duration) [][2]time.Time {
	var out [][2]time.Time
	for a := from; !a.Add(w).After(to); a = a.Add(w) {
		out = append(out, [2]time.Time{a, a.Add(w)})
	}
	return out
}

// minJain returns the lowest Jain index of the flows' goodputs over the
// windows of length w in [from, to).
func minJain(flows []*benchFlow, from, to time.Time, w time.Duration) float64 {
	lowest := 1.0
	for _, win := range windows(from, to, w) {
		var g []float64
		for _, f := range flows {
			g = append(g, f.goodput(win[0], win[1]))
		}
		lowest = min(lowest, metric.Jain(g))
	}
	return lowest
}

// TestExperimentE2Scheduler: 8 equal flows share the macroflow fairly in
// every window, and weights 2:1:1 are delivered as 50/25/25%.
func TestExperimentE2Scheduler(t *testing.T) {
	cfg := experimentConfig(t, 6*time.Second)
	win := 10 * time.Second
	if !cfg.full {
		win = time.Second
	}
	var fs figures
	for range cfg.runs {
		for _, cm := range []bool{true, false} {
			b := newBench(t, 1, Config{})
			var flows []*benchFlow
			for i := range 8 {
				var info *FlowInfo
				if cm {
					info = &FlowInfo{}
				}
				flows = append(flows, b.addFlow(fmt.Sprintf("f%d", i), 0, info))
			}
			_, from, to := measure(b, cfg, flows)
			b.close()
			name := "jain_min"
			if !cm {
				name = "baseline_jain_min"
			}
			fs.add(name, minJain(flows, from, to, win))
		}
		b := newBench(t, 1, Config{})
		weights := []int{2, 1, 1}
		var flows []*benchFlow
		for i, w := range weights {
			flows = append(flows, b.addFlow(fmt.Sprintf("w%d", i), 0, &FlowInfo{Weight: w}))
		}
		g, _, _ := measure(b, cfg, flows)
		b.close()
		worst := 0.0
		for i, w := range weights {
			want := float64(w) / 4
			worst = max(worst, math.Abs(g[i]/sum(g)/want-1))
		}
		fs.add("share_w2%", 100*g[0]/sum(g))
		fs.add("weight_err%", 100*worst)
	}
	jainMin, errMax := 0.98, 10.0
	if !cfg.full {
		jainMin, errMax = 0.9, 25
	}
	report(t, "E2", &fs, cfg, fmt.Sprintf("jain_min>=%.2f(%v windows),weights 2:1:1 within %.0f%%", jainMin, win, errMax), map[string]bool{
		"jain":    fs.med("jain_min") >= jainMin,
		"weights": fs.med("weight_err%") <= errMax,
	})
}

// TestExperimentE3Join: a flow joining an active macroflow gets its share
// within a second; the baseline is the same join without the manager.
func TestExperimentE3Join(t *testing.T) {
	cfg := experimentConfig(t, 8*time.Second)
	join := cfg.dur / 3
	const step = 250 * time.Millisecond
	var fs figures
	for range cfg.runs {
		for _, cm := range []bool{true, false} {
			b := newBench(t, 1, Config{})
			var info *FlowInfo
			if cm {
				info = &FlowInfo{}
			}
			var flows []*benchFlow
			for i := range 3 {
				flows = append(flows, b.addFlow(fmt.Sprintf("f%d", i), 0, info))
			}
			b.wait(join)
			joiner := b.addFlow("joiner", 0, info)
			flows = append(flows, joiner)
			b.wait(cfg.dur)
			b.close()
			// Reach: the end of the first window in which the joiner
			// had 90% of a fair share.
			reach := cfg.dur - join
			for _, w := range windows(joiner.start, b.start.Add(cfg.dur), step) {
				var g []float64
				for _, f := range flows {
					g = append(g, f.goodput(w[0], w[1]))
				}
				if g[3] >= 0.9*sum(g)/4 {
					reach = w[1].Sub(joiner.start)
					break
				}
			}
			// Hold: its share from one second after joining to the end.
			from, to := joiner.start.Add(time.Second), b.start.Add(cfg.dur)
			var g []float64
			for _, f := range flows {
				g = append(g, f.goodput(from, to))
			}
			held := 100 * g[3] / (sum(g) / 4)
			if cm {
				fs.add("reach_s", reach.Seconds())
				fs.add("held%", held)
			} else {
				fs.add("baseline_reach_s", reach.Seconds())
				fs.add("baseline_held%", held)
			}
		}
	}
	holdMin, reachMax := 90.0, 1.0
	if !cfg.full {
		holdMin, reachMax = 60, 2
	}
	report(t, "E3", &fs, cfg, fmt.Sprintf("reach<=%.0fs,held>=%.0f%%", reachMax, holdMin), map[string]bool{
		"reach": fs.med("reach_s") <= reachMax,
		"held":  fs.med("held%") >= holdMin,
	})
}

// retransAndRTT returns the flows' retransmitted share of the bytes sent
// (%) and the median of their srtt samples (ms) in [from, to).
func retransAndRTT(flows []*benchFlow, from, to time.Time) (retrans, rttMs float64) {
	var re, sent uint64
	var rtts []float64
	for _, f := range flows {
		a, z := f.at(from), f.at(to)
		re += z.retrans - a.retrans
		sent += z.sent - a.sent
		for _, s := range f.between(from, to) {
			rtts = append(rtts, float64(s.rtt)/float64(time.Millisecond))
		}
	}
	if sent == 0 {
		return math.NaN(), metric.Median(rtts)
	}
	return 100 * float64(re) / float64(sent), metric.Median(rtts)
}

// TestExperimentE4LossAndDelay: 8 flows through the manager retransmit
// little and queue no more than one ordinary flow; baselines: 8 ordinary
// flows and 1.
func TestExperimentE4LossAndDelay(t *testing.T) {
	cfg := experimentConfig(t, 8*time.Second)
	var fs figures
	for range cfg.runs {
		for _, c := range []struct {
			name string
			n    int
			cm   bool
			ctrl func(ControllerConfig) Controller
		}{
			{"cm8", 8, true, nil},
			// The delay-aware controller behind the same interface,
			// reported as a row of its own.
			{"cm8vegas", 8, true, func(c ControllerConfig) Controller { return ValidateWindow(NewVegas(c), c.MSS) }},
			{"plain8", 8, false, nil},
			{"plain1", 1, false, nil},
		} {
			b := newBench(t, 1, Config{NewController: c.ctrl})
			var info *FlowInfo
			if c.cm {
				info = &FlowInfo{}
			}
			var flows []*benchFlow
			for i := range c.n {
				flows = append(flows, b.addFlow(fmt.Sprintf("f%d", i), 0, info))
			}
			g, from, to := measure(b, cfg, flows)
			b.close()
			re, rtt := retransAndRTT(flows, from, to)
			fs.add(c.name+"_retrans%", re)
			fs.add(c.name+"_srtt_ms", rtt)
			fs.add(c.name+"_goodput%", 100*sum(g)/capacity)
		}
	}
	reMax := 1.0
	if !cfg.full {
		reMax = 2
	}
	report(t, "E4", &fs, cfg, fmt.Sprintf("cm8_retrans<=%.0f%%,cm8_srtt<=plain1_srtt", reMax), map[string]bool{
		"retrans": fs.med("cm8_retrans%") <= reMax,
		"srtt":    fs.med("cm8_srtt_ms") <= fs.med("plain1_srtt_ms")*map[bool]float64{true: 1, false: 1.2}[cfg.full],
	})
}

// TestExperimentE5Tracking: the bottleneck steps 10, 5, 2, 10 Mbit/s;
// Query's rate follows the receiver's goodput.
//
// The comparison window of a step is max(500 ms, 10 srtt), srtt the
// median of the kernel's during the step (about 90 ms at every rate: tbf
// keeps 80 ms of queue whatever its rate, since tc derives its byte limit
// from the latency on every change). The receiver's goodput counts bytes
// as the application reads them, in order: after a loss, the bytes sent
// in the next RTT wait in the receiver's out-of-order queue until the
// retransmission fills the hole, and then arrive at once. So a window
// boundary inside a recovery moves up to one window of TCP's, about one
// srtt of the bottleneck's rate, from one window's goodput to the next:
// an error of up to srtt/W alone. At 500 ms that is 15-20% (a 5 Mbit/s
// link "delivered" 5.39 Mbit/s in one window and 4.15 in the next, while
// Query read 4.70 and 4.79); over 10 srtt it stays under 10%, inside the
// 15% tolerance with room for Query's own error. A rate is not measurable
// on a timescale of one or two RTTs anyway: it is a count of ACKs.
// Settling is measured in these windows too: "settled at 0.9 s" means
// the window starting 0.9 s after the step and every later one was within
// 15%.
func TestExperimentE5Tracking(t *testing.T) {
	cfg := experimentConfig(t, 24*time.Second)
	stepLen := cfg.dur / 4
	if cfg.full {
		stepLen = 20 * time.Second
	}
	rates := []int64{10_000_000, 5_000_000, 2_000_000, 10_000_000}
	var fs figures
	for range cfg.runs {
		b := newBench(t, 1, Config{})
		f := b.addFlow("f", 0, &FlowInfo{})
		var errs, all []float64
		for i, r := range rates {
			if i > 0 {
				if err := b.tb.SetRate(r, 0); err != nil {
					t.Fatal(err)
				}
			}
			stepStart := time.Now()
			b.wait(time.Duration(i+1) * stepLen)
			stepEnd := time.Now()
			diag(t, f, stepStart, stepEnd)
			win := e5Window(f, stepStart, stepEnd)
			fs.add(fmt.Sprintf("win%d_ms", i), float64(win.Milliseconds()))
			// Settled: from the first window after which every window
			// of the step is within 15%.
			ws := windows(stepStart, stepEnd, win)
			for _, w := range ws[min(2, len(ws)):] {
				g := f.goodput(w[0], w[1])
				all = append(all, 100*math.Abs(meanQuery(f, w[0], w[1])*8-g)/g)
			}
			settledAt := len(ws)
			for j := len(ws) - 1; j >= 0; j-- {
				g := f.goodput(ws[j][0], ws[j][1])
				q := meanQuery(f, ws[j][0], ws[j][1]) * 8
				e := math.Abs(q-g) / g
				if os.Getenv("CM_E5TRACE") == "1" {
					t.Logf("E5 step %d window %d (%v): goodput %.0f query %.0f err %.0f%%", i, j, win, g, q, 100*e)
				}
				if e > 0.15 {
					break
				}
				settledAt = j
				errs = append(errs, 100*e)
			}
			settle := time.Duration(settledAt) * win
			if settledAt == len(ws) {
				settle = stepEnd.Sub(stepStart)
			}
			fs.add(fmt.Sprintf("settle%d_%dM_s", i, r/1_000_000), settle.Seconds())
		}
		b.close()
		fs.add("err_settled%", metric.Median(errs))
		fs.add("err_all%", metric.Median(all))
	}
	if !cfg.full {
		// Smoke test: Query follows the goodput roughly, one second
		// after each step.
		report(t, "E5", &fs, cfg, "median |query-goodput| <= 25% after 1s of each step", map[string]bool{
			"error": fs.med("err_all%") <= 25,
		})
		return
	}
	report(t, "E5", &fs, cfg, "|query-goodput|<=15% over max(500ms,10srtt) windows,settle<=2s down,<=5s up", map[string]bool{
		"down": fs.med("settle1_5M_s") <= 2 && fs.med("settle2_2M_s") <= 2,
		"up":   fs.med("settle3_10M_s") <= 5,
	})
}

// e5Window returns E5's comparison window for [from, to): max(500 ms,
// 10 srtt), in whole sample steps (see TestExperimentE5Tracking).
func e5Window(f *benchFlow, from, to time.Time) time.Duration {
	var rtts []float64
	for _, s := range f.between(from, to) {
		rtts = append(rtts, float64(s.rtt))
	}
	if len(rtts) == 0 {
		return 500 * time.Millisecond
	}
	w := max(500*time.Millisecond, 10*time.Duration(metric.Median(rtts)))
	return (w + sampleStep - 1) / sampleStep * sampleStep
}

// meanQuery is the mean Query rate (bytes/s) of f's samples in [from, to).
func meanQuery(f *benchFlow, from, to time.Time) float64 {
	var q []float64
	for _, s := range f.between(from, to) {
		q = append(q, s.query)
	}
	if len(q) == 0 {
		return 0
	}
	return sum(q) / float64(len(q))
}

// TestExperimentE6Aging: with the ACK path silent for a second, the
// macroflow's window halves every srtt down to the floor.
func TestExperimentE6Aging(t *testing.T) {
	cfg := experimentConfig(t, 5*time.Second)
	const silence = time.Second
	var fs figures
	var floorOK, halvingOK []bool
	for range cfg.runs {
		b := newBench(t, 1, Config{})
		f := b.addFlow("f", 0, &FlowInfo{})
		b.wait(cfg.dur - silence - time.Second)
		mf := f.cm.Flow().Macroflow()
		st0 := mf.Stats()
		floor := b.m.Config().MinWindow
		if err := b.tb.Blackhole(b.tb.Senders[0], true); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		type point struct {
			at     time.Duration
			window int
			srtt   time.Duration
			lastFb time.Time // the macroflow's last feedback
			signal bool      // a loss or timeout signal came before the sample
		}
		signals := func() int { st := f.cm.Stats(); return st.Losses + st.Timeouts }
		sig0 := signals()
		var trace []point
		tick := time.NewTicker(2 * time.Millisecond)
		for time.Since(start) < silence {
			<-tick.C
			st := mf.Stats()
			trace = append(trace, point{time.Since(start), st.Window, st.SRTT, st.LastFeedback, signals() != sig0})
		}
		tick.Stop()
		if err := b.tb.Blackhole(b.tb.Senders[0], false); err != nil {
			t.Fatal(err)
		}
		b.close()
		// The silence, as the manager saw it, begins with its last
		// feedback (the poller reads the last ACKs a little after the
		// route went away), with the window and srtt it had then.
		// Halvings: k srtts after that feedback the window is
		// W0/2^(k-1) (the controller waits one srtt, the normal wait
		// for the next ACK, before it ages), or the floor; until the
		// kernel's RTO brings a timeout signal.
		var ref point
		for _, p := range trace {
			if p.signal {
				break
			}
			if !p.lastFb.Equal(ref.lastFb) {
				ref = p
			}
		}
		silentFrom := ref.lastFb.Sub(start)
		worst, checked := 0.0, 0
		firstSignal := silence
		for _, p := range trace {
			if p.signal {
				// The kernel's RTO fired: from here on a timeout, not
				// aging, sets the window.
				firstSignal = p.at
				break
			}
			if p.at < ref.at || ref.srtt <= 0 {
				continue
			}
			since := p.at - silentFrom
			k := int(since / ref.srtt)
			want := max(float64(ref.window)/math.Pow(2, float64(max(k-1, 0))), float64(floor))
			// Leave out samples within 5% of an srtt of a halving: the
			// sampler and the controller read the clock apart.
			if off := since - time.Duration(k)*ref.srtt; off < ref.srtt/20 || off > ref.srtt-ref.srtt/20 {
				continue
			}
			if e := math.Abs(math.Log2(float64(p.window) / want)); e > worst {
				worst = e
				t.Logf("E6: worst at %v (k=%d): window %d, want %.0f", since, k, p.window, want)
			}
			checked++
		}
		st0.Window, st0.SRTT = ref.window, ref.srtt
		last := trace[len(trace)-1]
		toFloor := silence
		for _, p := range trace {
			if p.window <= floor {
				toFloor = p.at
				break
			}
		}
		fs.add("w0", float64(st0.Window))
		fs.add("srtt_ms", float64(st0.SRTT)/float64(time.Millisecond))
		fs.add("halving_err_log2", worst)
		fs.add("to_floor_ms", float64(toFloor)/float64(time.Millisecond))
		fs.add("final", float64(last.window))
		fs.add("first_signal_ms", float64(firstSignal)/float64(time.Millisecond))
		fs.add("checked", float64(checked))
		floorOK = append(floorOK, last.window <= floor)
		// A window already near the floor (the flow was squeezed when
		// the silence began) shows no halvings to check.
		halvingOK = append(halvingOK, st0.Window < 8*floor || (checked > 0 && worst <= 0.5))
	}
	report(t, "E6", &fs, cfg, fmt.Sprintf("window W0/2^(k-1) at k>=1 srtts (|log2 err|<=0.5) until the floor (%d B) or a kernel loss signal, at the floor by %v", DefaultMinSegments*DefaultMSS, silence), map[string]bool{
		"floor":   !slices.Contains(floorOK, false),
		"halving": !slices.Contains(halvingOK, false),
	})
}
