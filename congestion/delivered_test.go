package congestion

import (
	"math"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestDeliveredBytesCountsSACKedSegments(t *testing.T) {
	for _, tc := range []struct {
		name string
		info unix.TCPInfo
		want int64
	}{
		{"no hole", unix.TCPInfo{Bytes_acked: 100_000, Snd_mss: 1448}, 100_000},
		{"10 segments above a hole", unix.TCPInfo{Bytes_acked: 100_000, Sacked: 10, Snd_mss: 1448}, 114_480},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := deliveredBytes(&tc.info); got != tc.want {
				t.Errorf("deliveredBytes = %d, want %d", got, tc.want)
			}
		})
	}
}

// stepClock is a clock that moves only when the test says so; its timers
// never fire. The test runs on one goroutine, so it needs no lock.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time                        { return c.now }
func (c *stepClock) AfterFunc(time.Duration, func()) Timer { return stoppedTimer{} }

type stoppedTimer struct{}

func (stoppedTimer) Stop() bool               { return false }
func (stoppedTimer) Reset(time.Duration) bool { return false }

// TestQueryRateSteadyThroughALossRecovery: a flow delivers 1 MB/s
// steadily; a segment is lost, and for the next 100 ms the cumulative ACK
// stands still while the receiver SACKs what follows, until the
// retransmission fills the hole and the ACK jumps. Counting the SACKed
// bytes as they come (as Conn does, see deliveredBytes), Query's rate
// stays at the delivery rate through it; counting cumulative ACKs only,
// it leaves it (the meter stops; after an srtt without news Query gives
// window/srtt). The window hears of the bytes only with the cumulative
// ACK.
func TestQueryRateSteadyThroughALossRecovery(t *testing.T) {
	const (
		rate = 1e6 // bytes/s
		step = 10 * time.Millisecond
		srtt = 50 * time.Millisecond
		per  = int(rate * 0.01) // bytes per step
	)
	for _, sack := range []bool{true, false} {
		clock := &stepClock{now: time.Unix(1e9, 0)}
		m := NewManager(Config{Clock: clock, MaxWindow: 1 << 30, InitialWindow: 1 << 20})
		f, err := m.Open(FlowInfo{Macroflow: "h"})
		if err != nil {
			t.Fatal(err)
		}
		// 100 steps' worth written; a segment's worth always waits in
		// the host (unsent): the network, not the window, limits the
		// flow, so Query gives the delivery rate.
		f.Notify(100 * per)
		lo, hi := math.Inf(1), 0.0
		var held int // SACKed bytes waiting behind the hole
		for i := range 60 {
			clock.now = clock.now.Add(step)
			switch {
			case i >= 30 && i < 40: // the hole: only SACKs
				held += per
				if sack {
					f.sacked(per, per)
				}
				if w := f.Macroflow().Stats().Outstanding; i == 39 && w != 100*per-30*per {
					t.Errorf("sack=%v: outstanding %d while the ACK stands still, want %d", sack, w, 70*per)
				}
			case i == 40: // the retransmission fills it
				delivered := per
				if !sack {
					delivered += held
				}
				f.update(per+held, 0, NoCongestion, srtt, per, delivered)
			default:
				f.update(per, 0, NoCongestion, srtt, per, per)
			}
			if i >= 20 {
				q, _, _, _ := f.Query()
				lo, hi = min(lo, q), max(hi, q)
			}
		}
		t.Logf("sack=%v: Query from %.0f to %.0f B/s", sack, lo, hi)
		steady := lo > 0.9*rate && hi < 1.1*rate
		if steady != sack {
			t.Errorf("sack=%v: Query from %.0f to %.0f B/s around a delivery rate of %.0f; steady=%v, want %v", sack, lo, hi, rate, steady, sack)
		}
		f.Close()
	}
}
