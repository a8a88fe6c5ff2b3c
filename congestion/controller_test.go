package congestion_test

import (
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/congestion/internal/sim"
)

const mss = congestion.DefaultMSS

func newAIMD() *congestion.AIMD {
	return congestion.NewAIMD(congestion.ControllerConfig{
		MSS: mss, InitialWindow: 10 * mss, MinWindow: 2 * mss, MaxWindow: 1 << 30, Now: sim.Epoch,
	})
}

func at(d time.Duration) time.Time { return sim.Epoch.Add(d) }

// feedbackAt returns makers of an ack of n bytes and of a loss of one MSS
// d after the epoch, with the given srtt.
func feedbackAt(srtt time.Duration) (ack func(d time.Duration, n int) congestion.Feedback, loss func(d time.Duration, mode congestion.LossMode) congestion.Feedback) {
	ack = func(d time.Duration, n int) congestion.Feedback {
		return congestion.Feedback{Now: at(d), Acked: n, SRTT: srtt, HasFeedback: true}
	}
	loss = func(d time.Duration, mode congestion.LossMode) congestion.Feedback {
		return congestion.Feedback{Now: at(d), Lost: mss, Mode: mode, SRTT: srtt, HasFeedback: true}
	}
	return ack, loss
}

// TestAIMDRules checks each rule of RFC 3124 section 5.2 on the controller
// alone, as a table of (start state, feedback sequence, end state).
func TestAIMDRules(t *testing.T) {
	const srtt = 100 * time.Millisecond
	ack, loss := feedbackAt(srtt)
	tests := []struct {
		name  string
		start congestion.WindowState // zero: fresh controller
		fb    []congestion.Feedback
		want  congestion.WindowState
	}{
		{"slow start grows by bytes acked", congestion.WindowState{},
			[]congestion.Feedback{ack(0, 10*mss)}, congestion.WindowState{Window: 20 * mss, SSThresh: 1 << 30}},
		{"slow start stops at ssthresh", congestion.WindowState{Window: 10 * mss, SSThresh: 12 * mss},
			[]congestion.Feedback{ack(0, 10*mss)}, congestion.WindowState{Window: 12 * mss, SSThresh: 12 * mss}},
		{"additive increase: one MSS per window acked", congestion.WindowState{Window: 20 * mss, SSThresh: 10 * mss},
			[]congestion.Feedback{ack(0, 10*mss), ack(1, 10*mss)}, congestion.WindowState{Window: 21 * mss, SSThresh: 10 * mss}},
		{"additive increase: less than a window acked, no growth", congestion.WindowState{Window: 20 * mss, SSThresh: 10 * mss},
			[]congestion.Feedback{ack(0, 19*mss)}, congestion.WindowState{Window: 20 * mss, SSThresh: 10 * mss}},
		{"loss halves", congestion.WindowState{Window: 40 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback)}, congestion.WindowState{Window: 20 * mss, SSThresh: 20 * mss}},
		{"ECN halves", congestion.WindowState{Window: 40 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.ExplicitCongestion)}, congestion.WindowState{Window: 20 * mss, SSThresh: 20 * mss}},
		{"second loss within srtt ignored", congestion.WindowState{Window: 40 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback), loss(srtt/2, congestion.LossFeedback), loss(srtt-1, congestion.ExplicitCongestion)},
			congestion.WindowState{Window: 20 * mss, SSThresh: 20 * mss}},
		{"loss one srtt later halves again", congestion.WindowState{Window: 40 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback), loss(srtt, congestion.LossFeedback)},
			congestion.WindowState{Window: 10 * mss, SSThresh: 10 * mss}},
		{"halving stops at the floor", congestion.WindowState{Window: 3 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback)}, congestion.WindowState{Window: 2 * mss, SSThresh: 2 * mss}},
		{"NoFeedback: back to one MSS", congestion.WindowState{Window: 40 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.NoFeedback)}, congestion.WindowState{Window: mss, SSThresh: 20 * mss}},
		{"NoFeedback twice within srtt: ssthresh halved once", congestion.WindowState{Window: 40 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.NoFeedback), loss(1, congestion.NoFeedback)}, congestion.WindowState{Window: mss, SSThresh: 20 * mss}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAIMD()
			if tt.start != (congestion.WindowState{}) {
				a.SetState(tt.start)
			}
			for _, fb := range tt.fb {
				a.OnFeedback(fb)
			}
			if got := a.State(); got != tt.want {
				t.Errorf("state = %+v (%.1f MSS), want %+v (%.1f MSS)", got, float64(got.Window)/mss, tt.want, float64(tt.want.Window)/mss)
			}
		})
	}
}

// TestAIMDAgingHalvesPerSRTTToFloor is E6's unit test: without feedback
// the window halves once per srtt, down to the floor, and ssthresh keeps
// the memory of the old window.
func TestAIMDAgingHalvesPerSRTTToFloor(t *testing.T) {
	const srtt = 50 * time.Millisecond
	a := newAIMD()
	a.SetState(congestion.WindowState{Window: 256 * mss, SSThresh: 100 * mss})
	a.OnFeedback(congestion.Feedback{Now: at(0), Acked: 0, SRTT: srtt, HasFeedback: true})
	want := 256 * mss
	// The first srtt is the normal wait for an ACK; then one halving
	// per srtt.
	a.Age(at(srtt), srtt)
	if got := a.Window(); got != want {
		t.Fatalf("after 1 srtt: window %d MSS, want %d (no aging yet)", got/mss, want/mss)
	}
	for i := 2; i <= 20; i++ {
		// Just before the i-th srtt: no new halving yet.
		a.Age(at(time.Duration(i)*srtt-time.Millisecond), srtt)
		if got := a.Window(); got != want {
			t.Fatalf("%d srtt - 1ms: window %d MSS, want %d", i, got/mss, want/mss)
		}
		a.Age(at(time.Duration(i)*srtt), srtt)
		want = max(want/2, 2*mss)
		if got := a.Window(); got != want {
			t.Fatalf("after %d srtt: window %d MSS, want %d", i, got/mss, want/mss)
		}
	}
	if a.Window() != 2*mss {
		t.Fatalf("window did not reach the floor: %d", a.Window())
	}
	if st := a.State(); st.SSThresh != 192*mss {
		t.Fatalf("ssthresh = %d MSS, want 3/4 of 256", st.SSThresh/mss)
	}
	// Feedback resumes: slow start from the floor towards ssthresh.
	a.OnFeedback(congestion.Feedback{Now: at(2 * time.Second), Acked: 2 * mss, SRTT: srtt, HasFeedback: true})
	if a.Window() != 4*mss {
		t.Fatalf("after feedback resumed: window %d MSS, want 4 (slow start)", a.Window()/mss)
	}
}

// TestAIMDHugeAck: an absurd acknowledgement neither loops nor overflows.
func TestAIMDHugeAck(t *testing.T) {
	a := newAIMD()
	a.SetState(congestion.WindowState{Window: 20 * mss, SSThresh: 10 * mss})
	a.OnFeedback(congestion.Feedback{Now: at(0), Acked: 1 << 62, SRTT: time.Millisecond, HasFeedback: true})
	if w := a.Window(); w <= 20*mss || w > 1<<30 {
		t.Fatalf("window %d after a huge ack in congestion avoidance", w)
	}
	b := newAIMD()
	b.OnFeedback(congestion.Feedback{Now: at(0), Acked: 1<<63 - 1, SRTT: time.Millisecond, HasFeedback: true})
	if w := b.Window(); w != 1<<30 {
		t.Fatalf("window %d after a huge ack in slow start, want MaxWindow", w)
	}
}
