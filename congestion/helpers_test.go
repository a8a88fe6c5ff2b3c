package congestion_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/congestion/internal/sim"
)

// harness is a manager on a fake clock, with an optional simulated link.
type harness struct {
	t     *testing.T
	clock *sim.Clock
	m     *congestion.Manager
	link  *sim.Link
}

func newHarness(t *testing.T, cfg congestion.Config) *harness {
	t.Helper()
	clock := sim.NewClock()
	cfg.Clock = clock
	return &harness{t: t, clock: clock, m: congestion.NewManager(cfg)}
}

// withLink adds a bottleneck of rate bytes/s, queue bytes and one-way delay.
func (h *harness) withLink(rate float64, queue int, delay time.Duration) *harness {
	h.link = &sim.Link{Clock: h.clock, Rate: rate, QueueBytes: queue, Delay: delay}
	return h
}

func host(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80)
}

func (h *harness) open(info congestion.FlowInfo) *congestion.Flow {
	h.t.Helper()
	if !info.Dst.IsValid() {
		info.Dst = host(1)
	}
	f, err := h.m.Open(info)
	if err != nil {
		h.t.Fatalf("Open(%+v): %v", info, err)
	}
	h.t.Cleanup(func() { f.Close() })
	return f
}

// sender starts a backlogged sender for a new flow on the link.
func (h *harness) sender(info congestion.FlowInfo) *sim.Sender {
	s := &sim.Sender{Flow: h.open(info), Link: h.link, MSS: h.m.MSS(), Remaining: -1}
	s.Start()
	return s
}

// senders starts n equal backlogged senders in one macroflow.
func (h *harness) senders(n int) []*sim.Sender {
	ss := make([]*sim.Sender, n)
	for i := range ss {
		ss[i] = h.sender(congestion.FlowInfo{})
	}
	return ss
}

func (h *harness) stats(f *congestion.Flow) congestion.MacroflowStats {
	return f.Macroflow().Stats()
}

// grantNow requests n bytes and returns the grant made at once, failing
// the test if the request had to wait.
func (h *harness) grantNow(f *congestion.Flow, n int) congestion.Grant {
	h.t.Helper()
	var got *congestion.Grant
	if err := f.Request(n, func(g congestion.Grant) { got = &g }); err != nil {
		h.t.Fatalf("Request(%d): %v", n, err)
	}
	if got == nil {
		h.t.Fatalf("Request(%d) not granted at once (stats %+v)", n, h.stats(f))
	}
	return *got
}

func mssf(n int) string { return fmt.Sprintf("%.1f MSS", float64(n)/mss) }
