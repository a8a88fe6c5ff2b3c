// Package sim is a small discrete-event simulator for testing the
// congestion manager without a network: a fake clock that runs scheduled
// events in time order, a bottleneck link (rate, queue, delay), and
// senders that acquire grants, "send" packets over the link and report
// acknowledgements and losses back to their flows.
//
// Everything runs on the goroutine that advances the clock, so a
// simulation is deterministic: the same inputs give the same figures.
package sim

import (
	"container/heap"
	"sync"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// Epoch is the simulated time at which every Clock starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is a fake congestion.Clock. Time moves only in Advance and
// RunUntil, which run the due events in order (ties in scheduling
// order). It is safe for concurrent use; events run without its lock
// held, so they may schedule more events.
type Clock struct {
	mu  sync.Mutex
	now time.Time
	seq uint64
	q   events
}

var _ congestion.Clock = (*Clock)(nil)

// NewClock returns a clock at Epoch.
func NewClock() *Clock { return &Clock{now: Epoch} }

// Now implements congestion.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Since returns the simulated time elapsed since Epoch.
func (c *Clock) Since() time.Duration { return c.Now().Sub(Epoch) }

type event struct {
	at    time.Time
	seq   uint64
	fn    func()
	index int // in the heap; -1 when not scheduled
}

type events []*event

func (q events) Len() int { return len(q) }
func (q events) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q events) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *events) Push(x any) {
	e := x.(*event)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}

func (c *Clock) scheduleLocked(e *event, d time.Duration) {
	c.seq++
	e.at, e.seq = c.now.Add(max(d, 0)), c.seq
	heap.Push(&c.q, e)
}

// After runs fn after d of simulated time.
func (c *Clock) After(d time.Duration, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scheduleLocked(&event{fn: fn, index: -1}, d)
}

// AfterFunc implements congestion.Clock.
func (c *Clock) AfterFunc(d time.Duration, fn func()) congestion.Timer {
	t := &timer{c: c, e: &event{fn: fn, index: -1}}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scheduleLocked(t.e, d)
	return t
}

type timer struct {
	c *Clock
	e *event
}

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.e.index < 0 {
		return false
	}
	heap.Remove(&t.c.q, t.e.index)
	return true
}

func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	active := t.e.index >= 0
	if active {
		heap.Remove(&t.c.q, t.e.index)
	}
	t.c.scheduleLocked(t.e, d)
	return active
}

// Advance runs the events due within d and moves the clock d forward.
func (c *Clock) Advance(d time.Duration) { c.RunUntil(c.Now().Add(d)) }

// RunUntil runs the events due up to t, in order, and leaves the clock
// at t.
func (c *Clock) RunUntil(t time.Time) {
	for {
		c.mu.Lock()
		if len(c.q) == 0 || c.q[0].at.After(t) {
			if c.now.Before(t) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		e := heap.Pop(&c.q).(*event)
		c.now = e.at
		c.mu.Unlock()
		e.fn()
	}
}
