package sim

import (
	"slices"
	"testing"
	"time"
)

func TestClockRunsEventsInOrder(t *testing.T) {
	c := NewClock()
	var got []string
	c.After(20*time.Millisecond, func() { got = append(got, "b") })
	c.After(10*time.Millisecond, func() {
		got = append(got, "a")
		c.After(0, func() { got = append(got, "a2") }) // same instant, after a
	})
	c.After(20*time.Millisecond, func() { got = append(got, "c") }) // tie: scheduling order
	stopped := c.AfterFunc(15*time.Millisecond, func() { got = append(got, "stopped") })
	moved := c.AfterFunc(5*time.Millisecond, func() { got = append(got, "moved") })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop did not report the pending timer exactly once")
	}
	moved.Reset(30 * time.Millisecond)
	c.Advance(25 * time.Millisecond)
	if want := []string{"a", "a2", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if c.Since() != 25*time.Millisecond {
		t.Fatalf("clock at %v, want 25ms", c.Since())
	}
	c.Advance(5 * time.Millisecond)
	if got[len(got)-1] != "moved" {
		t.Fatalf("reset timer did not fire at 30ms: %v", got)
	}
}

func TestLinkQueueAndDelay(t *testing.T) {
	c := NewClock()
	l := &Link{Clock: c, Rate: 1e6, QueueBytes: 3000, Delay: 10 * time.Millisecond}
	var rtts []time.Duration
	lost := 0
	for range 4 { // 1000 bytes each: 1 ms of serialisation apiece
		l.Send(1000, func(rtt time.Duration, ce bool) { rtts = append(rtts, rtt) }, func() { lost++ })
	}
	c.Advance(time.Second)
	want := []time.Duration{21 * time.Millisecond, 22 * time.Millisecond, 23 * time.Millisecond}
	if !slices.Equal(rtts, want) || lost != 1 || l.Dropped != 1 {
		t.Fatalf("rtts %v lost %d dropped %d; want %v, the 4th packet dropped", rtts, lost, l.Dropped, want)
	}
	// Once drained, a packet sees only serialisation and propagation.
	l.Send(1000, func(rtt time.Duration, ce bool) { rtts = append(rtts, rtt) }, func() { lost++ })
	c.Advance(time.Second)
	if rtts[len(rtts)-1] != 21*time.Millisecond {
		t.Fatalf("rtt on an empty link %v, want 21ms", rtts[len(rtts)-1])
	}
}

func TestLinkMarksECN(t *testing.T) {
	c := NewClock()
	l := &Link{Clock: c, Rate: 1e6, QueueBytes: 10000, Delay: time.Millisecond, ECNBytes: 1500}
	var marks []bool
	for range 4 {
		l.Send(1000, func(_ time.Duration, ce bool) { marks = append(marks, ce) }, func() { t.Error("dropped") })
	}
	c.Advance(time.Second)
	if want := []bool{false, false, true, true}; !slices.Equal(marks, want) {
		t.Fatalf("ECN marks %v, want %v (backlog above 1500 bytes)", marks, want)
	}
}
