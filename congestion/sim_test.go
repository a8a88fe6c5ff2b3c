package congestion_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/congestion/internal/metric"
	"github.com/edgeadapt/edgeadapt/congestion/internal/sim"
)

// The simulated bench mirrors the real one of the experiments: a 10 Mbit/s
// bottleneck with about 80 ms of queue, here with 40 ms of base RTT.
const (
	benchRate  = 10e6 / 8 // bytes per second
	benchQueue = 100_000  // bytes: 80 ms at 10 Mbit/s
	benchDelay = 20 * time.Millisecond
)

func newBench(t *testing.T, cfg congestion.Config) *harness {
	return newHarness(t, cfg).withLink(benchRate, benchQueue, benchDelay)
}

// every runs fn every d of simulated time until the clock stops.
func (h *harness) every(d time.Duration, fn func()) {
	var tick func()
	tick = func() { fn(); h.clock.After(d, tick) }
	h.clock.After(d, tick)
}

func ackedOf(ss []*sim.Sender) []float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = float64(s.Acked)
	}
	return xs
}

func sub(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}

// TestSimSlowStartThenAdditiveIncrease follows one flow's window: it
// doubles every RTT until the first loss, then grows by about one MSS per
// RTT between losses, and the link stays busy.
func TestSimSlowStartThenAdditiveIncrease(t *testing.T) {
	// A long path (200 ms base RTT, BDP 250 kB) leaves room for several
	// slow-start rounds before the queue builds.
	const delay = 100 * time.Millisecond
	h := newHarness(t, congestion.Config{}).withLink(benchRate, 250_000, delay)
	s := h.sender(congestion.FlowInfo{})
	type sample struct {
		at           time.Duration
		window, lost int
		srtt         time.Duration
	}
	var samples []sample
	h.every(time.Millisecond, func() {
		st := h.stats(s.Flow)
		samples = append(samples, sample{h.clock.Since(), st.Window, s.Lost, st.SRTT})
	})
	h.clock.Advance(60 * time.Second)

	// Slow start: compare the window one base RTT apart before any loss.
	firstLoss := -1
	for i, x := range samples {
		if x.lost > 0 {
			firstLoss = i
			break
		}
	}
	if firstLoss < 0 {
		t.Fatal("no loss in 30 s on a finite queue")
	}
	checked := 0
	for i := int(3 * delay / time.Millisecond); ; {
		span := int(samples[i].srtt / time.Millisecond)
		// Once the window exceeds the path's BDP the queue grows faster
		// than srtt follows; the doubling is then per true RTT.
		if span == 0 || i+span >= firstLoss || float64(samples[i].window) > benchRate*2*delay.Seconds() {
			break
		}
		r := float64(samples[i+span].window) / float64(samples[i].window)
		if r < 1.5 || r > 2.3 {
			t.Errorf("slow start at %v: window %s -> %s in one srtt (x%.2f), want about x2",
				samples[i].at, mssf(samples[i].window), mssf(samples[i+span].window), r)
		}
		checked++
		i += span
	}
	if checked < 3 {
		t.Fatalf("only %d slow-start rounds checked (first loss at %v)", checked, samples[firstLoss].at)
	}

	// Additive increase: the longest loss-free stretch after 5 s.
	bestLen, bestStart := 0, 0
	for i := 5000; i < len(samples); {
		j := i
		for j < len(samples) && samples[j].lost == samples[i].lost {
			j++
		}
		if j-i > bestLen {
			bestLen, bestStart = j-i, i
		}
		i = j
	}
	// Skip two srtt after the halving (its losses are still reported).
	a := samples[bestStart+int(2*samples[bestStart].srtt/time.Millisecond)]
	b := samples[bestStart+bestLen-1]
	rounds := float64(b.at-a.at) / float64((a.srtt+b.srtt)/2)
	perRTT := float64(b.window-a.window) / mss / rounds
	t.Logf("AI: %s -> %s over %.1f srtt: %.2f MSS per srtt", mssf(a.window), mssf(b.window), rounds, perRTT)
	if perRTT < 0.6 || perRTT > 1.3 {
		t.Errorf("additive increase %.2f MSS per srtt, want about 1", perRTT)
	}

	if u := float64(s.Acked) / (benchRate * 60); u < 0.9 {
		t.Errorf("utilisation %.1f%%, want >= 90%%", 100*u)
	}
}

// TestSimEqualShares is E2's first half on the simulator: 8 equal flows
// get equal shares, Jain's index >= 0.98 in every 10 s window.
func TestSimEqualShares(t *testing.T) {
	h := newBench(t, congestion.Config{})
	ss := h.senders(8)
	h.clock.Advance(2 * time.Second)
	prev := ackedOf(ss)
	var total float64
	for w := range 6 {
		h.clock.Advance(10 * time.Second)
		cur := ackedOf(ss)
		d := sub(cur, prev)
		prev = cur
		total += metric.Sum(d)
		t.Logf("window %d: Jain %.4f", w, metric.Jain(d))
		if j := metric.Jain(d); j < 0.98 {
			t.Errorf("window %d: Jain %.4f < 0.98 (bytes %v)", w, j, d)
		}
	}
	if u := total / (benchRate * 60); u < 0.9 {
		t.Errorf("utilisation %.1f%%, want >= 90%%", 100*u)
	}
}

// TestSimWeightedShares is E2's second half: weights 2:1:1 deliver
// 50/25/25% within ±10%.
func TestSimWeightedShares(t *testing.T) {
	h := newBench(t, congestion.Config{})
	ss := []*sim.Sender{
		h.sender(congestion.FlowInfo{Weight: 2}),
		h.sender(congestion.FlowInfo{Weight: 1}),
		h.sender(congestion.FlowInfo{Weight: 1}),
	}
	checkShares(t, h, ss, []float64{0.5, 0.25, 0.25})
}

// TestSimPriorityClasses: the hierarchical scheduler gives the class of
// priority 1 twice the share of the class of priority 0, whatever the
// number of flows in each, and splits each class equally.
func TestSimPriorityClasses(t *testing.T) {
	h := newBench(t, congestion.Config{})
	ss := []*sim.Sender{
		h.sender(congestion.FlowInfo{Priority: 1}),
		h.sender(congestion.FlowInfo{}),
		h.sender(congestion.FlowInfo{}),
		h.sender(congestion.FlowInfo{}),
	}
	checkShares(t, h, ss, []float64{2.0 / 3, 1.0 / 9, 1.0 / 9, 1.0 / 9})
}

func checkShares(t *testing.T, h *harness, ss []*sim.Sender, want []float64) {
	t.Helper()
	h.clock.Advance(2 * time.Second)
	start := ackedOf(ss)
	h.clock.Advance(30 * time.Second)
	d := sub(ackedOf(ss), start)
	tot := metric.Sum(d)
	for i := range d {
		got := d[i] / tot
		t.Logf("flow %d: share %.3f, want %.3f", i, got, want[i])
		if math.Abs(got-want[i]) > 0.1*want[i] {
			t.Errorf("flow %d: share %.3f, want %.3f ±10%%", i, got, want[i])
		}
	}
}

// TestSimJoinGetsShareAtOnce is E3 on the simulator: a flow joining an
// active macroflow of 3 gets >= 90% of its quarter within 1 s, without
// slow start of its own.
func TestSimJoinGetsShareAtOnce(t *testing.T) {
	// join returns the bytes per 100 ms of a flow joining 3 running ones
	// in their macroflow, or (the baseline without CM) of 4 flows each in
	// its own macroflow.
	join := func(shared bool) []int {
		h := newBench(t, congestion.Config{})
		info := func(i int) congestion.FlowInfo {
			if shared {
				return congestion.FlowInfo{}
			}
			return congestion.FlowInfo{Macroflow: fmt.Sprintf("alone-%d", i)}
		}
		for i := range 3 {
			h.sender(info(i))
		}
		h.clock.Advance(20 * time.Second)
		late := h.sender(info(3))
		var bins []int
		prev := 0
		for range 20 {
			h.clock.Advance(100 * time.Millisecond)
			bins = append(bins, late.Acked-prev)
			prev = late.Acked
		}
		return bins
	}
	bins, alone := join(true), join(false)
	share := benchRate / 4 * 0.1 // bytes per 100 ms bin
	t.Logf("joined flow, bytes per 100 ms: %v (share %.0f)", bins, share)
	t.Logf("baseline, 4 macroflows:        %v", alone)
	// Within 1 s: from some bin k < 10 on, 300 ms hold >= 90% of the
	// share, and so does the whole second after.
	reached := func(bins []int) bool {
		for k := 0; k+3 <= 10; k++ {
			if float64(bins[k]+bins[k+1]+bins[k+2]) >= 0.9*3*share {
				return true
			}
		}
		return false
	}
	var second int
	for _, b := range bins[10:] {
		second += b
	}
	if !reached(bins) || float64(second) < 0.9*share*10 {
		t.Errorf("share not reached within 1 s, or not held: %v", bins)
	}
	if reached(alone) {
		t.Errorf("baseline without sharing reached its share within 1 s too (%v): the bench does not show what CM fixes", alone)
	}
}

// TestSimAgingWhenACKsSilent is E6 on the simulator: the ACK path goes
// silent; the window halves once per srtt down to the floor.
func TestSimAgingWhenACKsSilent(t *testing.T) {
	h := newBench(t, congestion.Config{})
	s := h.sender(congestion.FlowInfo{})
	h.clock.Advance(10 * time.Second)
	s.SilentACKs = true
	st := h.stats(s.Flow)
	srtt, floor := st.SRTT, h.m.Config().MinWindow
	// Feedback stops arriving now (the last ACK was just before).
	w := []int{st.Window}
	for range int(time.Second / srtt) {
		h.clock.Advance(srtt)
		w = append(w, h.stats(s.Flow).Window)
	}
	t.Logf("srtt %v, window per srtt: %v", srtt, w)
	if w[len(w)-1] != floor {
		t.Fatalf("window %s after 1 s of silence, want the floor %s", mssf(w[len(w)-1]), mssf(floor))
	}
	halvings := 0
	for i := 1; i < len(w); i++ {
		switch {
		case w[i] == w[i-1] && (i <= 2 || w[i] == floor):
			// The first srtt is the normal wait; the floor holds.
		case w[i] == max(w[i-1]/2, floor):
			halvings++
		default:
			t.Fatalf("srtt %d: window %s -> %s, want one halving per srtt", i, mssf(w[i-1]), mssf(w[i]))
		}
	}
	if halvings < 3 {
		t.Fatalf("only %d halvings", halvings)
	}
}

// TestSimQueryTracksRate is E5 on the simulator: Query's rate follows the
// bottleneck as it steps 10 -> 5 -> 2 -> 10 Mbit/s.
func TestSimQueryTracksRate(t *testing.T) {
	h := newBench(t, congestion.Config{})
	s := h.sender(congestion.FlowInfo{})
	steps := []float64{10e6 / 8, 5e6 / 8, 2e6 / 8, 10e6 / 8}
	settle := []time.Duration{5 * time.Second, 2 * time.Second, 2 * time.Second, 5 * time.Second}
	for i, rate := range steps {
		h.link.SetRate(rate)
		h.clock.Advance(settle[i])
		var qsum, n float64
		a0 := s.Acked
		t0 := h.clock.Since()
		h.every(100*time.Millisecond, func() {})
		for h.clock.Since()-t0 < 20*time.Second-settle[i] {
			h.clock.Advance(100 * time.Millisecond)
			r, _, _, ok := s.Flow.Query()
			if ok {
				qsum += r
				n++
			}
		}
		goodput := float64(s.Acked-a0) / (h.clock.Since() - t0).Seconds()
		q := qsum / n
		t.Logf("step %d (%.1f Mbit/s): Query %.0f B/s, goodput %.0f B/s (%.1f%%)", i, rate*8/1e6, q, goodput, 100*(q/goodput-1))
		if math.Abs(q/goodput-1) > 0.15 {
			t.Errorf("step %d: Query %.0f vs goodput %.0f: off by more than 15%%", i, q, goodput)
		}
	}
}

// TestSimECN: with ECN marks instead of drops the window halves on marks,
// nothing is lost and the link stays busy.
func TestSimECN(t *testing.T) {
	h := newBench(t, congestion.Config{})
	h.link.ECNBytes = benchQueue / 4
	ss := h.senders(4)
	h.clock.Advance(30 * time.Second)
	if h.link.Dropped != 0 {
		t.Errorf("%d packets dropped with ECN", h.link.Dropped)
	}
	if u := metric.Sum(ackedOf(ss)) / (benchRate * 30); u < 0.9 {
		t.Errorf("utilisation %.1f%%", 100*u)
	}
}

// TestSimOneDecreasePerSRTT: 8 flows of a macroflow all lose packets in
// the same queue overflows; the shared window is halved at most once per
// srtt, never once per flow.
func TestSimOneDecreasePerSRTT(t *testing.T) {
	h := newBench(t, congestion.Config{})
	ss := h.senders(8)
	var drops []time.Duration
	var srtts []time.Duration
	prev := 0
	h.every(time.Millisecond, func() {
		st := h.stats(ss[0].Flow)
		if prev > 0 && st.Window < prev*3/4 {
			drops = append(drops, h.clock.Since())
			srtts = append(srtts, st.SRTT)
		}
		prev = st.Window
	})
	h.clock.Advance(60 * time.Second)
	flowsLosing := 0
	for _, s := range ss {
		if s.Lost > 0 {
			flowsLosing++
		}
	}
	if len(drops) < 3 || flowsLosing < 4 {
		t.Fatalf("%d decreases, %d flows with losses: the test saw too little congestion", len(drops), flowsLosing)
	}
	for i := 1; i < len(drops); i++ {
		if gap := drops[i] - drops[i-1]; gap < srtts[i]-time.Millisecond {
			t.Errorf("decreases at %v and %v: %v apart, srtt %v", drops[i-1], drops[i], gap, srtts[i])
		}
	}
	t.Logf("%d decreases in 60 s with %d of 8 flows losing packets (%d drops)", len(drops), flowsLosing, h.link.Dropped)
}

// TestSimMacroflowVsOneFlow is E1 on the simulator: 4 flows to one host
// share one window, so against one flow to another host (its own
// macroflow, as an ordinary TCP) on the same bottleneck they take about
// half, not four fifths.
func TestSimMacroflowVsOneFlow(t *testing.T) {
	// run returns the share of the 4 flows; shared puts them in one
	// macroflow, otherwise each is its own (the baseline without CM).
	run := func(shared bool) (share, jainIdx, util float64) {
		h := newBench(t, congestion.Config{})
		var four []*sim.Sender
		for i := range 4 {
			info := congestion.FlowInfo{}
			if !shared {
				info.Macroflow = fmt.Sprintf("alone-%d", i)
			}
			four = append(four, h.sender(info))
		}
		other := h.sender(congestion.FlowInfo{Dst: host(2)})
		h.clock.Advance(5 * time.Second)
		a0, b0 := metric.Sum(ackedOf(four)), float64(other.Acked)
		h.clock.Advance(60 * time.Second)
		a, b := metric.Sum(ackedOf(four))-a0, float64(other.Acked)-b0
		return a / (a + b), metric.Jain([]float64{a, b}), (a + b) / (benchRate * 60)
	}
	share, j, u := run(true)
	base, _, _ := run(false)
	t.Logf("4 flows in one macroflow: %.1f%% against one flow (Jain %.3f, utilisation %.1f%%); as 4 macroflows: %.1f%%",
		100*share, j, 100*u, 100*base)
	if share < 0.4 || share > 0.6 {
		t.Errorf("macroflow share %.1f%%, want 50 ± 10%%", 100*share)
	}
	if j < 0.95 {
		t.Errorf("Jain %.3f < 0.95", j)
	}
	if u < 0.95 {
		t.Errorf("utilisation %.1f%% < 95%%", 100*u)
	}
	if base < 0.7 {
		t.Errorf("baseline: 4 separate flows took only %.1f%%; the bench does not show what CM fixes", 100*base)
	}
}
