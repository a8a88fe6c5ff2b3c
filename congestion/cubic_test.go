package congestion_test

import (
	"math"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/congestion/internal/sim"
)

func newCubic() *congestion.Cubic {
	return congestion.NewCubic(congestion.ControllerConfig{
		MSS: mss, InitialWindow: 10 * mss, MinWindow: 2 * mss, MaxWindow: 1 << 30, Now: sim.Epoch,
	})
}

// TestCubicRules checks the decrease rules of RFC 9438 on the controller
// alone: 0.7 on loss or ECN, once per srtt; one MSS on a timeout; slow
// start below ssthresh.
func TestCubicRules(t *testing.T) {
	const srtt = 100 * time.Millisecond
	ack, loss := feedbackAt(srtt)
	tests := []struct {
		name  string
		start congestion.WindowState
		fb    []congestion.Feedback
		want  congestion.WindowState
	}{
		{"slow start grows by bytes acked", congestion.WindowState{Window: 10 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{ack(0, 10*mss)}, congestion.WindowState{Window: 20 * mss, SSThresh: 1 << 30}},
		{"loss: 0.7", congestion.WindowState{Window: 100 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback)}, congestion.WindowState{Window: 70 * mss, SSThresh: 70 * mss}},
		{"ECN: 0.7", congestion.WindowState{Window: 100 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.ExplicitCongestion)}, congestion.WindowState{Window: 70 * mss, SSThresh: 70 * mss}},
		{"second loss within srtt ignored", congestion.WindowState{Window: 100 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback), loss(srtt-1, congestion.LossFeedback)},
			congestion.WindowState{Window: 70 * mss, SSThresh: 70 * mss}},
		{"loss one srtt later: 0.7 again", congestion.WindowState{Window: 100 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback), loss(srtt, congestion.LossFeedback)},
			congestion.WindowState{Window: 49 * mss, SSThresh: 49 * mss}},
		{"NoFeedback: one MSS", congestion.WindowState{Window: 100 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.NoFeedback)}, congestion.WindowState{Window: mss, SSThresh: 70 * mss}},
		{"decrease stops at the floor", congestion.WindowState{Window: 2 * mss, SSThresh: 1 << 30},
			[]congestion.Feedback{loss(0, congestion.LossFeedback)}, congestion.WindowState{Window: 2 * mss, SSThresh: 2 * mss}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCubic()
			c.SetState(tt.start)
			for _, fb := range tt.fb {
				c.OnFeedback(fb)
			}
			if got := c.State(); got != tt.want {
				t.Fatalf("state = %d/%d MSS, want %d/%d", got.Window/mss, got.SSThresh/mss, tt.want.Window/mss, tt.want.SSThresh/mss)
			}
		})
	}
}

// TestCubicRecoversToWMax: after a loss at W, the window follows the cubic
// function back to W in K = cbrt(0.3 W / 0.4) seconds, slowly near W (the
// plateau), and then probes beyond it.
func TestCubicRecoversToWMax(t *testing.T) {
	// A long RTT: on a short one the Reno-friendly estimate would lead.
	const srtt = 200 * time.Millisecond
	c := newCubic()
	c.SetState(congestion.WindowState{Window: 100 * mss, SSThresh: 1 << 30})
	c.OnFeedback(congestion.Feedback{Now: at(0), Lost: mss, Mode: congestion.LossFeedback, SRTT: srtt, HasFeedback: true})
	k := time.Duration(math.Cbrt(100*0.3/0.4) * float64(time.Second)) // 4.2 s
	windowAt := map[time.Duration]int{}
	// One window of acks per srtt, as a window-limited flow gets them.
	for now := srtt; now <= k+3*time.Second; now += srtt {
		c.OnFeedback(congestion.Feedback{Now: at(now), Acked: c.Window(), SRTT: srtt, HasFeedback: true})
		windowAt[now.Truncate(srtt)] = c.Window()
	}
	half := windowAt[(k / 2).Truncate(srtt)]
	nearK := windowAt[k.Truncate(srtt)]
	after := windowAt[(k + 3*time.Second).Truncate(srtt)]
	if half <= 70*mss || half >= 100*mss {
		t.Errorf("window at K/2 = %.1f MSS, want between 70 and 100", float64(half)/mss)
	}
	if nearK < 97*mss || nearK > 103*mss {
		t.Errorf("window at K = %.1f MSS, want about 100 (W_max)", float64(nearK)/mss)
	}
	if after <= 105*mss {
		t.Errorf("window 3 s after K = %.1f MSS, want beyond W_max (probing)", float64(after)/mss)
	}
}

// TestCubicAges: without feedback the window halves every srtt after the
// first, to the floor, as AIMD's.
func TestCubicAges(t *testing.T) {
	const srtt = 100 * time.Millisecond
	c := newCubic()
	c.SetState(congestion.WindowState{Window: 64 * mss, SSThresh: 32 * mss})
	c.OnFeedback(congestion.Feedback{Now: at(0), Acked: mss, SRTT: srtt, HasFeedback: true})
	w := c.Window()
	c.Age(at(srtt+srtt/2), srtt)
	if c.Window() != w {
		t.Fatalf("aged within the first srtt: %d -> %d", w, c.Window())
	}
	c.Age(at(3*srtt+srtt/2), srtt)
	if want := max(w/4, 2*mss); c.Window() != want {
		t.Fatalf("after 3.5 srtt: window %d, want %d (two halvings)", c.Window(), want)
	}
	c.Age(at(time.Second), srtt)
	if c.Window() != 2*mss {
		t.Fatalf("window %d after 10 srtt, want the floor", c.Window())
	}
}
