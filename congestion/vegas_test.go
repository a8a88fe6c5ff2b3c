package congestion_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/congestion/internal/metric"
	"github.com/edgeadapt/edgeadapt/congestion/internal/sim"
)

// runControllers runs 8 flows of one macroflow (or, separate, each in its
// own: the baseline without CM) on the simulated bench for 30 s with the
// given controller and returns the loss ratio, the median srtt after the
// first 5 s, the utilisation and Jain's index.
func runControllers(t *testing.T, newCtrl func(congestion.ControllerConfig) congestion.Controller, separate bool) (loss float64, srtt time.Duration, util float64, jainIdx float64) {
	h := newBench(t, congestion.Config{NewController: newCtrl})
	ss := make([]*sim.Sender, 8)
	for i := range ss {
		info := congestion.FlowInfo{}
		if separate {
			info.Macroflow = fmt.Sprintf("alone-%d", i)
		}
		ss[i] = h.sender(info)
	}
	h.clock.Advance(5 * time.Second)
	start := ackedOf(ss)
	var lost0 int
	for _, s := range ss {
		lost0 += s.Lost
	}
	var srtts []time.Duration
	h.every(10*time.Millisecond, func() { srtts = append(srtts, h.stats(ss[0].Flow).SRTT) })
	h.clock.Advance(30 * time.Second)
	d := sub(ackedOf(ss), start)
	var lost int
	for _, s := range ss {
		lost += s.Lost
	}
	slices.Sort(srtts)
	return float64(lost-lost0) / metric.Sum(d), srtts[len(srtts)/2], metric.Sum(d) / (benchRate * 30), metric.Jain(d)
}

// TestSimDelayAware compares the delay-aware controller with AIMD on the
// same simulated bench (E4's rows): Vegas keeps the queue, and so srtt,
// near the base RTT without loss, at the same utilisation and fairness.
func TestSimDelayAware(t *testing.T) {
	aLoss, aSRTT, aUtil, aJain := runControllers(t, nil, false)
	vLoss, vSRTT, vUtil, vJain := runControllers(t, func(c congestion.ControllerConfig) congestion.Controller { return congestion.NewVegas(c) }, false)
	bLoss, bSRTT, bUtil, bJain := runControllers(t, nil, true)
	t.Logf("no CM: loss %.3f%%, median srtt %v, utilisation %.1f%%, Jain %.4f (8 separate AIMD flows)", 100*bLoss, bSRTT, 100*bUtil, bJain)
	t.Logf("AIMD : loss %.3f%%, median srtt %v, utilisation %.1f%%, Jain %.4f", 100*aLoss, aSRTT, 100*aUtil, aJain)
	t.Logf("Vegas: loss %.3f%%, median srtt %v, utilisation %.1f%%, Jain %.4f", 100*vLoss, vSRTT, 100*vUtil, vJain)
	base := 2 * benchDelay
	if aLoss > 0.01 || aLoss >= bLoss {
		t.Errorf("AIMD loss %.2f%%, want <= 1%% and below the baseline's %.2f%%", 100*aLoss, 100*bLoss)
	}
	if vLoss != 0 {
		t.Errorf("Vegas lost %.3f%% in steady state, want none", 100*vLoss)
	}
	if vSRTT > base+15*time.Millisecond || vSRTT >= aSRTT {
		t.Errorf("Vegas median srtt %v, want <= base %v + 15ms and below AIMD's %v", vSRTT, base, aSRTT)
	}
	if vUtil < 0.9 || aUtil < 0.9 {
		t.Errorf("utilisation AIMD %.1f%%, Vegas %.1f%%, want >= 90%%", 100*aUtil, 100*vUtil)
	}
	if vJain < 0.98 || aJain < 0.98 {
		t.Errorf("Jain AIMD %.4f, Vegas %.4f, want >= 0.98", aJain, vJain)
	}
}

// TestVegasRules drives the controller alone, one srtt-long round at a
// time, with the round's RTT samples showing a given backlog.
func TestVegasRules(t *testing.T) {
	const base = 40 * time.Millisecond
	newV := func(window, ssthresh int) *congestion.Vegas {
		v := congestion.NewVegas(congestion.ControllerConfig{
			MSS: mss, InitialWindow: 10 * mss, MinWindow: 2 * mss, MaxWindow: 1 << 30, Now: at(0),
		})
		v.SetState(congestion.WindowState{Window: window, SSThresh: ssthresh})
		return v
	}
	// round feeds one round of acks whose RTT puts `queued` segments of
	// the window in the bottleneck queue: queued = w*(rtt-base)/rtt.
	round := func(v *congestion.Vegas, start time.Duration, queued float64) {
		w := float64(v.Window())
		rtt := time.Duration(float64(base) * w / (w - queued*mss))
		for i := range 2 {
			v.OnFeedback(congestion.Feedback{
				Now: at(start + time.Duration(i)*rtt), Acked: mss, RTT: rtt,
				SRTT: rtt, MinRTT: base, HasFeedback: true,
			})
		}
	}
	tests := []struct {
		name     string
		queued   float64 // segments
		start    int     // window, MSS; ssthresh below it: congestion avoidance
		wantDiff int     // window change after one round, MSS
	}{
		{"short queue: +1 MSS", 1, 30, +1},
		{"queue between alpha and beta: hold", 3, 30, 0},
		{"long queue: -1 MSS", 6, 30, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newV(tt.start*mss, tt.start*mss)
			round(v, 0, tt.queued)
			if got := (v.Window() - tt.start*mss) / mss; got != tt.wantDiff {
				t.Fatalf("window changed by %d MSS, want %d", got, tt.wantDiff)
			}
		})
	}
	t.Run("slow start ends past gamma", func(t *testing.T) {
		v := newV(10*mss, 1<<30)
		round(v, 0, 3)
		if st := v.State(); st.SSThresh > st.Window {
			t.Fatalf("still in slow start with %.1f segments queued: %+v", 3.0, st)
		}
	})
	t.Run("loss halves as AIMD", func(t *testing.T) {
		v := newV(40*mss, 20*mss)
		v.OnFeedback(congestion.Feedback{Now: at(0), Lost: mss, Mode: congestion.LossFeedback, SRTT: base, HasFeedback: true})
		if v.Window() != 20*mss {
			t.Fatalf("window %s after loss, want 20 MSS", mssf(v.Window()))
		}
	})
}
