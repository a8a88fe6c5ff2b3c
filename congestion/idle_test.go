package congestion_test

import (
	"math"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/congestion/internal/sim"
)

// windowAt advances the clock to at and returns the macroflow's window.
func (h *harness) windowAt(f *congestion.Flow, at time.Duration) int {
	h.clock.Advance(at - h.clock.Since())
	return h.stats(f).Window
}

// transfer has s send n bytes and runs the clock until all are acked.
func (h *harness) transfer(s *sim.Sender, n int) {
	h.t.Helper()
	s.Remaining = n
	s.Start()
	for i := 0; s.Remaining > 0 || h.stats(s.Flow).Outstanding > 0; i++ {
		if i > 1000 {
			h.t.Fatalf("transfer did not finish: %+v", h.stats(s.Flow))
		}
		h.clock.Advance(100 * time.Millisecond)
	}
}

// TestSimIdleRestart tells the two kinds of silence apart. After a
// transfer the macroflow is idle (nothing outstanding): its window halves
// once per RTO-like period, max(srtt+4*rttvar, IdleAgingPeriod), the
// first one free, and never below the initial window (RFC 2861, RFC 5681
// section 4.1). When sending resumes with the ACK path silent, the window
// halves every srtt, counted from the restart, down to MinWindow (RFC
// 3124 section 5.2, EXPERIMENT E6).
func TestSimIdleRestart(t *testing.T) {
	h := newBench(t, congestion.Config{})
	s := &sim.Sender{Flow: h.open(congestion.FlowInfo{}), Link: h.link, MSS: h.m.MSS()}
	h.transfer(s, 2<<20)
	st := h.stats(s.Flow)
	cfg := h.m.Config()
	iw := cfg.InitialWindow
	if st.Window < 4*iw {
		t.Fatalf("setup: window %s after the transfer, want >= 4 IW", mssf(st.Window))
	}
	rto := max(st.SRTT+4*st.RTTVar, congestion.DefaultIdleAgingPeriod)
	last := st.LastFeedback.Sub(sim.Epoch)
	var got []int
	for k := 0; k < 10; k++ {
		w := h.windowAt(s.Flow, last+time.Duration(k)*rto+rto/2)
		got = append(got, w)
		if want := max(st.Window>>max(k-1, 0), iw); w != want {
			t.Fatalf("idle for %.1f periods of %v: window %s, want %s (windows %v)", float64(k)+0.5, rto, mssf(w), mssf(want), got)
		}
	}
	if w := h.windowAt(s.Flow, h.clock.Since()+time.Minute); w != iw {
		t.Fatalf("idle for a minute: window %s, want the initial %s", mssf(w), mssf(iw))
	}

	// Resume with the ACK path silent: per srtt from the restart.
	s.SilentACKs, s.Remaining = true, 1<<20
	start := h.clock.Since()
	s.Start()
	got = got[:0]
	for k := 0; k < int(time.Second/st.SRTT); k++ {
		w := h.windowAt(s.Flow, start+time.Duration(k)*st.SRTT+st.SRTT/2)
		got = append(got, w)
		if want := max(iw>>max(k-1, 0), cfg.MinWindow); w != want {
			t.Fatalf("silent for %.1f srtt after the restart: window %s, want %s (windows %v)", float64(k)+0.5, mssf(w), mssf(want), got)
		}
	}
	if got[len(got)-1] != cfg.MinWindow {
		t.Fatalf("window %s after 1 s of silence, want the floor %s", mssf(got[len(got)-1]), mssf(cfg.MinWindow))
	}
}

// TestSimIdleQueryKeepsDeliveryRate: an idle macroflow reports the
// delivery rate it last measured, not window/srtt, so the window kept
// over the idle period does not make a slow receiver look fast.
func TestSimIdleQueryKeepsDeliveryRate(t *testing.T) {
	const rate = 40e3 // bytes per second: 320 kbit/s, a "slow" client
	h := newHarness(t, congestion.Config{}).withLink(rate, 6_000, 50*time.Millisecond)
	s := &sim.Sender{Flow: h.open(congestion.FlowInfo{}), Link: h.link, MSS: h.m.MSS()}
	h.transfer(s, 400_000)
	for _, idle := range []time.Duration{0, time.Second, 5 * time.Second} {
		h.clock.Advance(idle)
		r, srtt, _, ok := s.Flow.Query()
		st := h.stats(s.Flow)
		t.Logf("idle %v: Query %.0f B/s, window/srtt %.0f B/s (window %s, srtt %v)", idle, r, float64(st.Window)/srtt.Seconds(), mssf(st.Window), srtt)
		if !ok || math.Abs(r/rate-1) > 0.25 {
			t.Errorf("idle %v: Query %.0f B/s (ok %v), want the link's %.0f within 25%%", idle, r, ok, rate)
		}
	}
}
