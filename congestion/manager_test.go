package congestion_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

func TestDefaultsFilled(t *testing.T) {
	c := congestion.NewManager(congestion.Config{}).Config()
	if c.MSS != congestion.DefaultMSS || c.InitialWindow != 10*c.MSS || c.MinWindow != 2*c.MSS ||
		c.MaxMacroflows != congestion.DefaultMaxMacroflows || c.MaxFlowsPerMacroflow != congestion.DefaultMaxFlowsPerMacroflow ||
		c.RememberTTL != congestion.DefaultRememberTTL || c.GrantTimeout != congestion.DefaultGrantTimeout ||
		c.Clock == nil || c.NewController == nil || c.NewScheduler == nil {
		t.Fatalf("zero Config not defaulted: %+v", c)
	}
}

func TestMacroflowGrouping(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		cfg  congestion.Config
		a, b congestion.FlowInfo
		same bool
		keyA string
	}{
		{"same host, different ports", congestion.Config{},
			congestion.FlowInfo{Dst: ap("10.0.0.1:80")}, congestion.FlowInfo{Dst: ap("10.0.0.1:443")}, true, "10.0.0.1/32"},
		{"different hosts", congestion.Config{},
			congestion.FlowInfo{Dst: ap("10.0.0.1:80")}, congestion.FlowInfo{Dst: ap("10.0.0.2:80")}, false, "10.0.0.1/32"},
		{"IPv4 /24", congestion.Config{IPv4PrefixLen: 24},
			congestion.FlowInfo{Dst: ap("10.0.0.1:80")}, congestion.FlowInfo{Dst: ap("10.0.0.200:80")}, true, "10.0.0.0/24"},
		{"IPv4-mapped IPv6 is IPv4", congestion.Config{},
			congestion.FlowInfo{Dst: ap("[::ffff:10.0.0.1]:80")}, congestion.FlowInfo{Dst: ap("10.0.0.1:80")}, true, "10.0.0.1/32"},
		{"IPv6 /64", congestion.Config{IPv6PrefixLen: 64},
			congestion.FlowInfo{Dst: ap("[2001:db8::1]:80")}, congestion.FlowInfo{Dst: ap("[2001:db8::2]:80")}, true, "2001:db8::/64"},
		{"explicit name", congestion.Config{},
			congestion.FlowInfo{Dst: ap("10.0.0.1:80"), Macroflow: "cdn"}, congestion.FlowInfo{Dst: ap("10.9.9.9:80"), Macroflow: "cdn"}, true, "cdn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			a, b := h.open(tt.a), h.open(tt.b)
			if got := a.Macroflow() == b.Macroflow(); got != tt.same {
				t.Errorf("same macroflow = %v, want %v (%s, %s)", got, tt.same, a.Macroflow().Key(), b.Macroflow().Key())
			}
			if a.Macroflow().Key() != tt.keyA {
				t.Errorf("key = %q, want %q", a.Macroflow().Key(), tt.keyA)
			}
		})
	}
}

func TestSetMacroflowMovesOutstanding(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	a := h.open(congestion.FlowInfo{Dst: host(1)})
	g := h.grantNow(a, 4000)
	a.Notify(g.N)
	old := a.Macroflow()
	if err := a.SetMacroflow("elsewhere"); err != nil {
		t.Fatal(err)
	}
	if a.Macroflow().Key() != "elsewhere" || h.m.Macroflow("elsewhere") != a.Macroflow() {
		t.Fatalf("flow in %q after SetMacroflow", a.Macroflow().Key())
	}
	if s := old.Stats(); s.Outstanding != 0 || s.Flows != 0 {
		t.Errorf("old macroflow keeps %d bytes, %d flows", s.Outstanding, s.Flows)
	}
	if s := a.Macroflow().Stats(); s.Outstanding != 4000 || s.Flows != 1 {
		t.Errorf("new macroflow has %d bytes, %d flows; want 4000, 1", s.Outstanding, s.Flows)
	}
	a.Update(4000, 0, congestion.NoCongestion, 10*time.Millisecond)
	if s := a.Macroflow().Stats(); s.Outstanding != 0 || s.SRTT != 10*time.Millisecond {
		t.Errorf("after update: %+v", s)
	}
	if err := a.SetMacroflow(""); !errors.Is(err, congestion.ErrInvalidMacroflowName) {
		t.Errorf("SetMacroflow(\"\") = %v", err)
	}
}

// TestSetMacroflowMovesWaitingAcquire: a flow blocked on a full window
// moves to an empty macroflow and is granted there.
func TestSetMacroflowMovesWaitingAcquire(t *testing.T) {
	h := newHarness(t, congestion.Config{MaxGrant: 1 << 20})
	hog := h.open(congestion.FlowInfo{})
	hog.Notify(h.grantNow(hog, 1<<20).N)
	f := h.open(congestion.FlowInfo{})
	done := make(chan error)
	go func() { _, err := f.Acquire(context.Background(), 1000); done <- err }()
	waitFor(t, func() bool { return h.stats(f).Waiting == 1 })
	if err := f.SetMacroflow("other"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Acquire still blocked after moving to an empty macroflow: %+v", h.stats(f))
	}
	if s := h.stats(f); s.Key != "other" || s.Granted != 1000 {
		t.Fatalf("new macroflow: %+v", s)
	}
	if s := h.stats(hog); s.Waiting != 0 || s.Flows != 1 {
		t.Fatalf("old macroflow: %+v", s)
	}
}

func TestLimits(t *testing.T) {
	t.Run("flows per macroflow", func(t *testing.T) {
		h := newHarness(t, congestion.Config{MaxFlowsPerMacroflow: 2})
		h.open(congestion.FlowInfo{})
		h.open(congestion.FlowInfo{})
		if _, err := h.m.Open(congestion.FlowInfo{Dst: host(1)}); !errors.Is(err, congestion.ErrTooManyFlows) {
			t.Fatalf("third flow: err = %v, want ErrTooManyFlows", err)
		}
	})
	t.Run("macroflows, remembered ones evicted first", func(t *testing.T) {
		h := newHarness(t, congestion.Config{MaxMacroflows: 2})
		a := h.open(congestion.FlowInfo{Dst: host(1)})
		h.open(congestion.FlowInfo{Dst: host(2)})
		if _, err := h.m.Open(congestion.FlowInfo{Dst: host(3)}); !errors.Is(err, congestion.ErrTooManyMacroflows) {
			t.Fatalf("third host with two active: err = %v, want ErrTooManyMacroflows", err)
		}
		a.Close() // host 1 is now only remembered
		h.open(congestion.FlowInfo{Dst: host(3)})
		if n := h.m.Macroflows(); n != 2 {
			t.Fatalf("%d macroflows kept, limit 2", n)
		}
		if h.m.Macroflow("10.0.0.1/32") != nil {
			t.Fatal("remembered macroflow of host 1 not evicted")
		}
	})
}

func TestOpenWithoutDestination(t *testing.T) {
	m := congestion.NewManager(congestion.Config{})
	if _, err := m.Open(congestion.FlowInfo{Protocol: "tcp"}); !errors.Is(err, congestion.ErrNoDestination) {
		t.Fatalf("Open without Dst = %v, want ErrNoDestination", err)
	}
	f, err := m.Open(congestion.FlowInfo{Macroflow: "named"})
	if err != nil || f.Macroflow().Key() != "named" {
		t.Fatalf("Open with only a macroflow name: %v", err)
	}
	f.Close()
}

func TestRequestErrors(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	f := h.open(congestion.FlowInfo{})
	if err := f.Request(0, func(congestion.Grant) {}); !errors.Is(err, congestion.ErrInvalidRequest) {
		t.Errorf("Request(0) = %v", err)
	}
	h.grantNow(f, 1000)
	if err := f.Request(1000, func(congestion.Grant) {}); !errors.Is(err, congestion.ErrGrantOutstanding) {
		t.Errorf("Request with grant not notified = %v", err)
	}
	f.Notify(0) // decline
	if s := h.stats(f); s.Granted != 0 || s.Outstanding != 0 {
		t.Errorf("declined grant still counted: %+v", s)
	}
	// Fill the window so the next request waits.
	g := h.grantNow(f, 1<<20)
	f.Notify(g.N)
	if err := f.Request(1000, func(congestion.Grant) {}); err != nil {
		t.Fatal(err)
	}
	if err := f.Request(1000, func(congestion.Grant) {}); !errors.Is(err, congestion.ErrRequestPending) {
		t.Errorf("second pending request = %v", err)
	}
	if !f.CancelRequest() || f.CancelRequest() {
		t.Error("CancelRequest did not report the pending request exactly once")
	}
	f.Close()
	if err := f.Request(1000, func(congestion.Grant) {}); !errors.Is(err, congestion.ErrClosed) {
		t.Errorf("Request after Close = %v", err)
	}
	if _, err := f.Acquire(context.Background(), 10); !errors.Is(err, congestion.ErrClosed) {
		t.Errorf("Acquire after Close = %v", err)
	}
}

func TestGrantSize(t *testing.T) {
	h := newHarness(t, congestion.Config{MaxGrant: 4 * mss})
	f := h.open(congestion.FlowInfo{})
	if g := h.grantNow(f, 100); g.N != 100 {
		t.Errorf("small request granted %d, want 100", g.N)
	}
	f.Notify(100)
	if g := h.grantNow(f, 1<<20); g.N != 4*mss {
		t.Errorf("large request granted %d, want MaxGrant %d", g.N, 4*mss)
	}
}

// TestGrantExpiry: a flow that takes the whole window and never notifies
// stalls its macroflow only until max(srtt, GrantTimeout).
func TestGrantExpiry(t *testing.T) {
	for _, srtt := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond} {
		t.Run(srtt.String(), func(t *testing.T) {
			h := newHarness(t, congestion.Config{GrantTimeout: 200 * time.Millisecond, MaxGrant: 1 << 20})
			crashed, other := h.open(congestion.FlowInfo{}), h.open(congestion.FlowInfo{})
			// An RTT sample sets srtt.
			g := h.grantNow(crashed, 1000)
			crashed.Notify(g.N)
			crashed.Update(g.N, 0, congestion.NoCongestion, srtt)

			start := h.clock.Now()
			g = h.grantNow(crashed, 1<<20) // the whole window, never notified
			if want := start.Add(max(srtt, 200*time.Millisecond)); !g.Expires.Equal(want) {
				t.Fatalf("grant expires at %v, want %v", g.Expires.Sub(start), want.Sub(start))
			}
			var got *congestion.Grant
			if err := other.Request(mss, func(g congestion.Grant) { got = &g }); err != nil {
				t.Fatal(err)
			}
			h.clock.RunUntil(g.Expires.Add(-time.Millisecond))
			if got != nil {
				t.Fatal("other flow granted before the grant expired")
			}
			h.clock.RunUntil(g.Expires)
			if got == nil {
				t.Fatalf("other flow still waiting after the grant expired: %+v", h.stats(other))
			}
			if s := h.stats(other); s.ExpiredGrants != 1 {
				t.Errorf("ExpiredGrants = %d, want 1", s.ExpiredGrants)
			}
			// The crashed flow may come back: its late Notify still counts
			// what it sent, and it can ask again.
			crashed.Notify(500)
			if s := h.stats(crashed); s.Outstanding != 500 {
				t.Errorf("late notify: outstanding %d, want 500", s.Outstanding)
			}
		})
	}
}

// TestAcquireBlocksUntilExpiry drives the blocking form: Acquire in another
// goroutine returns when the fake clock expires the grant that filled the
// window.
func TestAcquireBlocksUntilExpiry(t *testing.T) {
	h := newHarness(t, congestion.Config{MaxGrant: 1 << 20})
	hog, f := h.open(congestion.FlowInfo{}), h.open(congestion.FlowInfo{})
	h.grantNow(hog, 1<<20)
	done := make(chan congestion.Grant)
	go func() {
		g, err := f.Acquire(context.Background(), 3000)
		if err != nil {
			t.Error(err)
		}
		done <- g
	}()
	waitFor(t, func() bool { return h.stats(f).Waiting == 1 })
	h.clock.Advance(congestion.DefaultGrantTimeout)
	select {
	case g := <-done:
		if g.N != 3000 {
			t.Errorf("granted %d, want 3000", g.N)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire still blocked after the hog's grant expired")
	}
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAcquireCancelAndClose(t *testing.T) {
	h := newHarness(t, congestion.Config{MaxGrant: 1 << 20})
	hog := h.open(congestion.FlowInfo{})
	hog.Notify(h.grantNow(hog, 1<<20).N) // window full of outstanding bytes
	f := h.open(congestion.FlowInfo{})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := f.Acquire(ctx, 1000); errc <- err }()
	waitFor(t, func() bool { return h.stats(f).Waiting == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire = %v", err)
	}
	if s := h.stats(f); s.Waiting != 0 || s.Granted != 0 {
		t.Fatalf("cancelled Acquire left state: %+v", s)
	}

	go func() { _, err := f.Acquire(context.Background(), 1000); errc <- err }()
	waitFor(t, func() bool { return h.stats(f).Waiting == 1 })
	f.Close()
	if err := <-errc; !errors.Is(err, congestion.ErrClosed) {
		t.Fatalf("Acquire on closed flow = %v", err)
	}
}

// TestBogusUpdatesCapped: a flow cannot grow the window with feedback
// about bytes it never sent, nor by lying about what it sent beyond what
// slow start would allow in one srtt.
func TestBogusUpdatesCapped(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	f := h.open(congestion.FlowInfo{})
	iw := h.stats(f).Window

	f.Update(1<<20, 0, congestion.NoCongestion, 10*time.Millisecond)
	if s := h.stats(f); s.Window != iw || s.CappedUpdates != 1 {
		t.Fatalf("ack of unsent bytes: window %s (was %s), capped %d", mssf(s.Window), mssf(iw), s.CappedUpdates)
	}
	f.Update(0, 1<<20, congestion.NoCongestion, 0)
	if s := h.stats(f); s.Outstanding != 0 {
		t.Fatalf("outstanding went to %d", s.Outstanding)
	}

	// Claims 10 MB sent (no grant) and acked, repeatedly within one srtt.
	for range 10 {
		f.Notify(10 << 20)
		f.Update(10<<20, 0, congestion.NoCongestion, 10*time.Millisecond)
	}
	if s := h.stats(f); s.Window > 2*iw+2*mss {
		t.Fatalf("bogus updates grew the window to %s within one srtt, cap %s", mssf(s.Window), mssf(2*iw+2*mss))
	}
	// Over several srtts the cap lets it at most double per srtt.
	w := h.stats(f).Window
	for range 3 {
		h.clock.Advance(10 * time.Millisecond)
		f.Notify(10 << 20)
		f.Update(10<<20, 0, congestion.NoCongestion, 10*time.Millisecond)
		nw := h.stats(f).Window
		if nw > 2*w+2*mss {
			t.Fatalf("window %s -> %s in one srtt", mssf(w), mssf(nw))
		}
		w = nw
	}
}

// TestUpdateBeforeNotify: feedback polled while the writer has not yet
// notified may acknowledge bytes of its grant; they count, Notify adds only
// the rest, and nothing stays outstanding. Beyond the grant the cap holds.
func TestUpdateBeforeNotify(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	f := h.open(congestion.FlowInfo{})
	iw := h.stats(f).Window
	g := h.grantNow(f, 10000)
	f.Update(4000, 0, congestion.NoCongestion, 10*time.Millisecond)
	if s := h.stats(f); s.Window != iw+4000 || s.CappedUpdates != 0 {
		t.Fatalf("early ack: %+v, want window %d and nothing capped", s, iw+4000)
	}
	f.Update(9000, 0, congestion.NoCongestion, 10*time.Millisecond) // 3000 beyond the grant
	if s := h.stats(f); s.Window != iw+g.N || s.CappedUpdates != 1 {
		t.Fatalf("ack beyond the grant: %+v, want window %d and one capped update", s, iw+g.N)
	}
	f.Notify(g.N)
	if s := h.stats(f); s.Outstanding != 0 || s.Granted != 0 {
		t.Fatalf("after Notify of acked bytes: %+v, want nothing outstanding", s)
	}
	h.clock.Advance(10 * time.Millisecond) // a new round: no growth cap
	g = h.grantNow(f, 10000)
	f.Update(2000, 0, congestion.NoCongestion, 10*time.Millisecond)
	f.Notify(g.N)
	f.Update(g.N-2000, 0, congestion.NoCongestion, 10*time.Millisecond)
	if s := h.stats(f); s.Outstanding != 0 || s.CappedUpdates != 1 {
		t.Fatalf("ack split around Notify: %+v", s)
	}
}

// TestHalvingOncePerSRTTAcrossFlows: the four flows of a macroflow all see
// the same loss; the shared window halves once, not four times.
func TestHalvingOncePerSRTTAcrossFlows(t *testing.T) {
	const srtt = 100 * time.Millisecond
	h := newHarness(t, congestion.Config{})
	var flows []*congestion.Flow
	for range 4 {
		f := h.open(congestion.FlowInfo{})
		g := h.grantNow(f, 2*mss)
		f.Notify(g.N)
		flows = append(flows, f)
	}
	flows[0].Update(mss, 0, congestion.NoCongestion, srtt)
	w := h.stats(flows[0]).Window
	for i, f := range flows {
		h.clock.Advance(srtt / 10)
		f.Update(0, mss/2, congestion.LossFeedback, 0)
		if got := h.stats(f).Window; got != w/2 {
			t.Fatalf("after loss report %d: window %s, want %s", i+1, mssf(got), mssf(w/2))
		}
	}
	// One srtt after the first decrease, but within the loss episode
	// (bytes outstanding at the first signal are not all acked yet): the
	// slow flow's late report of the same overflow is merged.
	h.clock.Advance(srtt - 3*srtt/10)
	flows[1].Update(0, mss/2, congestion.ExplicitCongestion, 0)
	if s := h.stats(flows[1]); s.Window != w/2 || s.MergedSignals != 4 {
		t.Fatalf("late report within the episode: window %s, merged %d; want %s, 4", mssf(s.Window), s.MergedSignals, mssf(w/2))
	}
	// Everything outstanding at the first signal is acked: a new loss is
	// a new episode, and halves again.
	for _, f := range flows {
		f.Update(2*mss, 0, congestion.NoCongestion, srtt)
	}
	if s := h.stats(flows[0]); s.Outstanding != 0 {
		t.Fatalf("outstanding %d after acking everything", s.Outstanding)
	}
	g := h.grantNow(flows[2], mss)
	flows[2].Notify(g.N)
	w = h.stats(flows[2]).Window
	flows[2].Update(0, g.N, congestion.LossFeedback, 0)
	if got := h.stats(flows[2]).Window; got != max(w/2, 2*mss) {
		t.Fatalf("loss in a new episode: window %s, want %s", mssf(got), mssf(max(w/2, 2*mss)))
	}
}

func TestNoFeedbackOneMSS(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	a, b := h.open(congestion.FlowInfo{}), h.open(congestion.FlowInfo{})
	g := h.grantNow(a, 1<<20)
	a.Notify(g.N)
	a.Update(g.N/4, 0, congestion.NoCongestion, 20*time.Millisecond)
	// Within an srtt of other feedback a timeout is one flow's: a loss.
	w := h.stats(a).Window
	a.Update(0, g.N/4, congestion.NoFeedback, 0)
	if s := h.stats(a); s.Window != w/2 || s.LocalTimeouts != 1 {
		t.Fatalf("window after a timeout within an srtt of feedback = %s, local timeouts %d; want %s, 1", mssf(s.Window), s.LocalTimeouts, mssf(w/2))
	}
	// An srtt and a half without feedback: the macroflow timed out.
	h.clock.Advance(30 * time.Millisecond)
	a.Update(0, g.N-2*(g.N/4), congestion.NoFeedback, 0)
	if s := h.stats(a); s.Window != mss {
		t.Fatalf("window after NoFeedback = %s, want 1 MSS", mssf(s.Window))
	}
	// Only one MSS may be in flight now.
	if g := h.grantNow(b, 1<<20); g.N != mss {
		t.Fatalf("grant after timeout = %d, want one MSS", g.N)
	}
}

func TestStaleBytesReleased(t *testing.T) {
	h := newHarness(t, congestion.Config{StaleTimeout: time.Second})
	crashed, other := h.open(congestion.FlowInfo{}), h.open(congestion.FlowInfo{})
	crashed.Notify(h.grantNow(crashed, 1<<20).N) // sent, never updated
	var got *congestion.Grant
	if err := other.Request(mss, func(g congestion.Grant) { got = &g }); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	other.CancelRequest()
	if err := other.Request(mss, func(g congestion.Grant) { got = &g }); err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatalf("bytes of a silent flow still block the macroflow: %+v", h.stats(other))
	}
	if s := h.stats(other); s.StaleReleased == 0 {
		t.Error("StaleReleased not counted")
	}
}

// TestRememberedState (RFC 9040 temporal sharing): a flow to a host seen
// recently starts from the remembered, aged state; after RememberTTL it
// starts afresh.
func TestRememberedState(t *testing.T) {
	const srtt = 100 * time.Millisecond
	h := newHarness(t, congestion.Config{RememberTTL: time.Minute, MaxGrant: 1 << 30})
	f := h.open(congestion.FlowInfo{})
	iw := h.stats(f).Window
	// Slow start for 6 rounds (window x 64), then a loss.
	for range 6 {
		g := h.grantNow(f, h.stats(f).Window)
		f.Notify(g.N)
		h.clock.Advance(srtt)
		f.Update(g.N-mss, 0, congestion.NoCongestion, srtt)
	}
	f.Update(0, mss, congestion.LossFeedback, 0)
	before := h.stats(f)
	if before.Window <= 4*iw {
		t.Fatalf("setup: window only %s", mssf(before.Window))
	}
	f.Close()

	// Reopened within one srtt: same state.
	g := h.open(congestion.FlowInfo{})
	if s := h.stats(g); s.Window != before.Window || s.SSThresh != before.SSThresh || s.SRTT != before.SRTT {
		t.Fatalf("reopened at once: %+v, want window/ssthresh/srtt of %+v", s, before)
	}
	g.Close()

	// Reopened after 3 RTO-like periods idle: aged twice (the first
	// period is free, RFC 2861), ssthresh and srtt kept.
	rto := max(before.SRTT+4*before.RTTVar, congestion.DefaultIdleAgingPeriod)
	h.clock.Advance(3 * rto)
	g = h.open(congestion.FlowInfo{})
	if s := h.stats(g); s.Window != max(before.Window/4, iw) || s.SSThresh < before.SSThresh || s.SRTT != srtt {
		t.Fatalf("reopened after 3 periods of %v: %+v, want window %s, ssthresh >= %s, srtt %v",
			rto, s, mssf(max(before.Window/4, iw)), mssf(before.SSThresh), srtt)
	}
	g.Close()

	// After a long idle the window is the initial one, but ssthresh still
	// remembers where the path was.
	h.clock.Advance(30 * time.Second)
	g = h.open(congestion.FlowInfo{})
	if s := h.stats(g); s.Window != iw || s.SSThresh < before.SSThresh || s.SRTT != srtt {
		t.Fatalf("reopened after 30s: %+v", s)
	}
	g.Close()

	// After RememberTTL: fresh state.
	h.clock.Advance(2 * time.Minute)
	g = h.open(congestion.FlowInfo{})
	if s := h.stats(g); s.Window != iw || s.SRTT != 0 || s.SSThresh != congestion.DefaultMaxWindow {
		t.Fatalf("reopened after TTL: %+v, want fresh", s)
	}
}

func TestQueryShareByWeight(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	a := h.open(congestion.FlowInfo{Weight: 3})
	b := h.open(congestion.FlowInfo{Weight: 1})
	if _, _, _, ok := a.Query(); ok {
		t.Fatal("Query ok before any RTT sample")
	}
	a.Notify(h.grantNow(a, 2*mss).N)
	b.Notify(h.grantNow(b, 2*mss).N)
	a.Update(mss, 0, congestion.NoCongestion, 100*time.Millisecond)
	ra, srtt, _, ok := a.Query()
	rb, _, _, _ := b.Query()
	if !ok || srtt != 100*time.Millisecond {
		t.Fatalf("Query: ok %v srtt %v", ok, srtt)
	}
	total := float64(h.stats(a).Window) / 0.1
	if ra != total*3/4 || rb != total/4 {
		t.Fatalf("rates %.0f, %.0f; want 3/4 and 1/4 of %.0f", ra, rb, total)
	}
	// b goes idle (nothing outstanding): a gets the whole rate.
	b.Update(2*mss, 0, congestion.NoCongestion, 0)
	if ra, _, _, _ = a.Query(); ra != float64(h.stats(a).Window)/0.1 {
		t.Fatalf("rate with the other flow idle = %.0f, want the whole %.0f", ra, float64(h.stats(a).Window)/0.1)
	}
}

func TestSubscribeThresholds(t *testing.T) {
	h := newHarness(t, congestion.Config{})
	f := h.open(congestion.FlowInfo{})
	var got []congestion.Status
	cancel := f.Subscribe(congestion.Thresholds{RateDown: 0.3, RateUp: 0.5, RTTUp: -1, RTTDown: -1},
		func(s congestion.Status) { got = append(got, s) })
	f.Notify(h.grantNow(f, 4*mss).N)
	f.Update(mss, 0, congestion.NoCongestion, 100*time.Millisecond) // first sample: reported
	if len(got) != 1 {
		t.Fatalf("%d notices after the first sample, want 1", len(got))
	}
	first := got[0].Rate
	f.Update(mss, 0, congestion.NoCongestion, 100*time.Millisecond) // +1 MSS of 11: below 50%
	if len(got) != 1 {
		t.Fatalf("notice for a %.0f%% change under the 50%% threshold", 100*(1/11.0))
	}
	f.Update(0, mss, congestion.LossFeedback, 0) // halved: beyond 30% down
	if len(got) != 2 || got[1].Rate >= first*0.7 {
		t.Fatalf("notices %+v: want a second one after halving", got)
	}
	cancel()
	h.clock.Advance(time.Second)
	f.Update(mss, 0, congestion.NoFeedback, 0)
	if len(got) != 2 {
		t.Fatal("notice after cancel")
	}
}

func TestManagerClose(t *testing.T) {
	h := newHarness(t, congestion.Config{MaxGrant: 1 << 20})
	hog := h.open(congestion.FlowInfo{})
	hog.Notify(h.grantNow(hog, 1<<20).N)
	f := h.open(congestion.FlowInfo{Dst: host(1)})
	errc := make(chan error)
	go func() { _, err := f.Acquire(context.Background(), 1000); errc <- err }()
	waitFor(t, func() bool { return h.stats(f).Waiting == 1 })
	h.m.Close()
	if err := <-errc; !errors.Is(err, congestion.ErrClosed) {
		t.Fatalf("Acquire during Manager.Close = %v", err)
	}
	if n := h.m.Macroflows(); n != 0 {
		t.Fatalf("%d macroflows after Close", n)
	}
	if g := h.open(congestion.FlowInfo{}); h.stats(g).Window != h.m.Config().InitialWindow {
		t.Fatal("flow opened after Close does not start afresh")
	}
}
