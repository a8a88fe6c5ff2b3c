package congestion

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Grant is permission to send (RFC 3124 cmapp_send): up to N bytes,
// until Expires. The flow must call [Flow.Notify] with what it sent (0
// to decline) before it asks again; an unused grant expires at Expires
// and its bytes return to the macroflow.
type Grant struct {
	N       int
	Expires time.Time
}

// Status is what a flow learns about its path (RFC 3124 cm_query and
// cmapp_update).
type Status struct {
	// Rate is the flow's share of the macroflow's rate (its delivery
	// rate while the network limits it, window/srtt otherwise; see the
	// package documentation), split by weight among the flows in use, in
	// bytes per second.
	Rate   float64
	SRTT   time.Duration
	RTTVar time.Duration
}

// Thresholds say when a subscriber is told about a change (RFC 3124
// cm_thresh): when the rate or the srtt moved up or down by more than the
// given fraction of the last value reported (0.25 = 25%). Zero fields take
// DefaultThreshold; a negative field disables that direction.
type Thresholds struct {
	RateDown, RateUp float64
	RTTDown, RTTUp   float64
}

type subscription struct {
	t    Thresholds
	fn   func(Status)
	last Status
	sent bool
}

func exceeded(now, last, down, up float64) bool {
	if last <= 0 {
		return now > 0
	}
	r := now/last - 1
	return (down >= 0 && r < -down) || (up >= 0 && r > up)
}

func (s *subscription) crossed(st Status) bool {
	if !s.sent {
		s.sent = true
		return true
	}
	return exceeded(st.Rate, s.last.Rate, s.t.RateDown, s.t.RateUp) ||
		exceeded(st.SRTT.Seconds(), s.last.SRTT.Seconds(), s.t.RTTDown, s.t.RTTUp)
}

// Flow is one stream of a macroflow (RFC 3124 cm_flowid). Its methods are
// safe for concurrent use, but a flow has at most one request and one
// grant at a time.
type Flow struct {
	m        *Manager
	id       uint64
	info     FlowInfo
	mf       atomic.Pointer[Macroflow]
	grantCh  chan Grant
	closedCh chan struct{}
	// acquireFn is f.deliver, made once so Acquire does not allocate.
	acquireFn func(Grant)

	// Guarded by the macroflow's mu.
	pending      int         // bytes requested, 0 when no request
	sendFn       func(Grant) // callback of the pending request
	grant        Grant       // live grant, N == 0 when none
	outstanding  int         // bytes notified and not yet acked or lost
	preacked     int         // bytes of the current grant acked before Notify
	unsent       int         // bytes of outstanding still queued in the sending host (setUnsent)
	lastFeedback time.Time   // last Update with feedback, or last Notify into an empty pipe
	sub          *subscription
	closed       bool
}

// ID returns a number unique among the manager's flows.
func (f *Flow) ID() uint64 { return f.id }

// Info returns the flow's description (with defaults filled in).
func (f *Flow) Info() FlowInfo { return f.info }

// Weight returns the flow's scheduling weight.
func (f *Flow) Weight() int { return f.info.Weight }

// Priority returns the flow's priority hint (0..7).
func (f *Flow) Priority() int { return f.info.Priority }

// Macroflow returns the macroflow the flow belongs to.
func (f *Flow) Macroflow() *Macroflow { return f.mf.Load() }

func (f *Flow) active() bool {
	return f.pending > 0 || f.grant.N > 0 || f.outstanding > 0
}

// lock locks the flow's current macroflow and returns it.
func (f *Flow) lock() *Macroflow {
	for {
		mf := f.mf.Load()
		mf.mu.Lock()
		if f.mf.Load() == mf {
			return mf
		}
		mf.mu.Unlock()
	}
}

// lockOpen locks the flow's macroflow and returns it with the config and
// the time, or returns a nil macroflow (and holds no lock) if the flow is
// closed.
func (f *Flow) lockOpen() (*Macroflow, *Config, time.Time) {
	mf := f.lock()
	if f.closed {
		mf.mu.Unlock()
		return nil, nil, time.Time{}
	}
	return mf, &f.m.cfg, f.m.cfg.Clock.Now()
}

// deliver is the callback Acquire passes to Request.
func (f *Flow) deliver(g Grant) { f.grantCh <- g }

// Request asks for permission to send up to n bytes (cm_request). When
// the scheduler picks the flow and the window has room, send is called
// with the grant, from the goroutine that opened the window (an Update,
// Notify, Close or timer), never while the manager holds a lock. It
// fails if the flow is closed, already has a request pending, or still
// holds a grant it has not notified.
func (f *Flow) Request(n int, send func(Grant)) error {
	if n <= 0 {
		return ErrInvalidRequest
	}
	var o outbox
	mf := f.lock()
	if err := f.requestLocked(mf, n, send); err != nil {
		mf.mu.Unlock()
		return err
	}
	mf.dispatchLocked(f.m.cfg.Clock.Now(), &o)
	mf.mu.Unlock()
	o.run()
	return nil
}

func (f *Flow) requestLocked(mf *Macroflow, n int, send func(Grant)) error {
	switch {
	case f.closed:
		return ErrClosed
	case f.pending > 0:
		return ErrRequestPending
	case f.grant.N > 0:
		// An expired grant no longer blocks the flow.
		mf.expireLocked(f.m.cfg.Clock.Now())
		if f.grant.N > 0 {
			return ErrGrantOutstanding
		}
	}
	f.pending = n
	f.sendFn = send
	mf.sched.Wait(f)
	return nil
}

// CancelRequest withdraws a pending request. It reports whether there was
// one; false means the grant was already made (or none was asked for).
func (f *Flow) CancelRequest() bool {
	mf := f.lock()
	defer mf.mu.Unlock()
	if f.pending == 0 {
		return false
	}
	f.pending = 0
	f.sendFn = nil
	mf.sched.Cancel(f)
	return true
}

// Acquire blocks until the flow may send, and returns a grant of at most n
// bytes (at least min(n, MSS) unless the window is below one MSS). It
// returns ctx.Err() when ctx is done first, and ErrClosed when the flow
// is closed. The caller must call Notify before its next Acquire.
func (f *Flow) Acquire(ctx context.Context, n int) (Grant, error) {
	return f.acquire(ctx, n, nil)
}

// acquire is Acquire; when the grant does not come at once, it calls
// beforeWait (if not nil) before it blocks: a Conn reads its feedback
// there, since the ACKs that free the window have often arrived already.
func (f *Flow) acquire(ctx context.Context, n int, beforeWait func()) (Grant, error) {
	if err := f.Request(n, f.acquireFn); err != nil {
		return Grant{}, err
	}
	if beforeWait != nil {
		select {
		case g := <-f.grantCh:
			return g, nil
		default:
			beforeWait()
		}
	}
	select {
	case g := <-f.grantCh:
		return g, nil
	case <-ctx.Done():
	case <-f.closedCh:
	}
	if !f.CancelRequest() {
		// The grant crossed the cancellation: decline it.
		select {
		case <-f.grantCh:
			f.Notify(0)
		case <-f.closedCh:
		}
	}
	if err := ctx.Err(); err != nil {
		return Grant{}, err
	}
	return Grant{}, ErrClosed
}

// Notify tells the manager that the flow sent nsent bytes of its current
// grant (cm_notify); 0 declines the grant. The grant ends either way, and
// nsent bytes count as outstanding until Update reports them received or
// lost. Notify after the grant expired still counts the bytes: they are
// in the network.
func (f *Flow) Notify(nsent int) {
	var o outbox
	mf, c, now := f.lockOpen()
	if mf == nil {
		return
	}
	if f.grant.N > 0 {
		mf.granted -= f.grant.N
		f.grant = Grant{}
	}
	// Bytes already acknowledged (see Update) are not outstanding.
	pre := min(max(nsent, 0), f.preacked)
	nsent -= pre
	f.preacked = 0
	if nsent > 0 {
		// More than MaxWindow in one go is a lie or a bug; clamped, it
		// still blocks the macroflow but cannot overflow the counts.
		nsent = min(nsent, c.MaxWindow)
		if f.outstanding == 0 {
			f.lastFeedback = now // the stale clock starts with the first byte
		}
		f.outstanding += nsent
		mf.outstanding += nsent
		mf.sent += int64(nsent)
	}
	mf.dispatchLocked(now, &o)
	mf.mu.Unlock()
	o.run()
}

// Update reports feedback from the receiver (cm_update): nrecd bytes
// arrived, nlost were lost, mode is the congestion signal, and rtt an RTT
// sample (0 if none). nrecd and nlost are capped at the flow's outstanding
// bytes, plus, for nrecd, the bytes of its current grant (feedback read
// concurrently with a write may run ahead of Notify; Notify then counts
// only the rest). The window's growth within one srtt is capped at
// doubling, so bogus updates cannot inflate the macroflow's window.
func (f *Flow) Update(nrecd, nlost int, mode LossMode, rtt time.Duration) {
	f.update(nrecd, nlost, mode, rtt, -1, -1)
}

// update is Update that also sets the flow's unsent bytes (see setUnsent)
// under the same lock, unless unsent is negative, and counts delivered
// bytes in the macroflow's rate (nrecd when delivered is negative; a Conn
// counts SACKed bytes too, see deliveredBytes).
func (f *Flow) update(nrecd, nlost int, mode LossMode, rtt time.Duration, unsent, delivered int) {
	var o outbox
	mf, c, now := f.lockOpen()
	if mf == nil {
		return
	}
	nrecd, nlost = max(nrecd, 0), max(nlost, 0)
	idle := mf.idleLocked() // before this update: aging up to now
	if delivered < 0 {
		delivered = nrecd
	}
	// Feedback read concurrently with a write (TCP_INFO polled while the
	// writer has not yet called Notify) may acknowledge bytes of the
	// current grant: they are credited against the grant, never beyond.
	credit := 0
	if excess := nrecd - f.outstanding; excess > 0 && f.grant.N > f.preacked {
		credit = min(excess, f.grant.N-f.preacked)
		f.preacked += credit
		nrecd -= credit
	}
	if nrecd > f.outstanding || nlost > f.outstanding-min(nrecd, f.outstanding) {
		mf.stats.CappedUpdates++
		if f.m.debug() {
			f.m.log.Debug("congestion: update capped", "macroflow", mf.key, "flow", f.id,
				"nrecd", nrecd, "nlost", nlost, "outstanding", f.outstanding)
		}
		nrecd = min(nrecd, f.outstanding)
		nlost = min(nlost, f.outstanding-nrecd)
	}
	f.outstanding -= nrecd + nlost
	mf.outstanding -= nrecd + nlost
	if unsent < 0 {
		unsent = f.unsent
	}
	f.setUnsentLocked(mf, unsent)
	nrecd += credit
	if mode == NoFeedback && mf.hasRTT && !mf.lastFb.IsZero() && now.Sub(mf.lastFb) < mf.srtt {
		// One flow timed out while the macroflow had feedback within the
		// last srtt: the path is not silent. A loss, not a timeout of the
		// macroflow: one connection with a few segments in flight and no
		// duplicate ACKs must not take every flow's window to one MSS
		// (EXPERIMENT E1).
		mode = LossFeedback
		mf.stats.LocalTimeouts++
	}
	feedback := nrecd+nlost > 0 || mode == ExplicitCongestion
	if feedback || mode == NoFeedback {
		f.lastFeedback = now
		mf.lastFb = now
	}
	mf.sampleRTTLocked(rtt)
	mf.ageIdleLocked(now, idle)
	if mf.unsent > 0 {
		mf.dr.limitedAt = now // the host's queue holds bytes back
	}
	if delivered > 0 {
		mf.dr.ackLimited(now, delivered, mf.srtt)
	}

	mode = mf.episodeLocked(mode)

	// Growth cap: at most doubling (plus two segments of slack for ACK
	// bunching) within one srtt.
	if mf.roundStart.IsZero() || (mf.hasRTT && now.Sub(mf.roundStart) >= mf.srtt) {
		mf.roundStart, mf.roundBase = now, mf.ctrl.Window()
	}
	mf.ctrl.OnFeedback(Feedback{
		Now: now, Acked: nrecd, Lost: nlost, Mode: mode, RTT: rtt,
		SRTT: mf.srtt, RTTVar: mf.rttvar, MinRTT: mf.minRTT,
		InFlight: mf.outstanding - mf.unsent + mf.granted, HasFeedback: feedback,
	})
	if limit := 2*mf.roundBase + 2*c.MSS; mf.ctrl.Window() > limit {
		st := mf.ctrl.State()
		st.Window = limit
		mf.ctrl.SetState(st)
		mf.stats.CappedUpdates++
		if f.m.debug() {
			f.m.log.Debug("congestion: window growth capped", "macroflow", mf.key, "flow", f.id, "window", limit)
		}
	}
	mf.lastUsed = now
	mf.dispatchLocked(now, &o)
	mf.notifyLocked(&o)
	mf.mu.Unlock()
	o.run()
}

// setUnsent tells the macroflow that n of the flow's outstanding bytes
// have not left the sending host yet (a Conn's kernel send queue): they
// do not count as in flight, neither in the window nor in the rate.
func (f *Flow) setUnsent(n int) { f.sacked(0, n) }

// sacked counts n bytes the receiver got above a hole in the macroflow's
// rate, and sets the flow's unsent bytes like setUnsent: the window hears
// of them with the cumulative ACK.
func (f *Flow) sacked(n, unsent int) {
	var o outbox
	mf, _, now := f.lockOpen()
	if mf == nil {
		return
	}
	if n > 0 {
		mf.dr.ackLimited(now, n, mf.srtt)
	}
	old := f.unsent
	f.setUnsentLocked(mf, unsent)
	if mf.unsent > 0 {
		mf.dr.limitedAt = now // the host's queue holds bytes back
	}
	if f.unsent < old {
		mf.dispatchLocked(now, &o)
	}
	mf.mu.Unlock()
	o.run()
}

// setUnsentLocked sets f.unsent to n, within [0, f.outstanding], and
// keeps the macroflow's sum. mf.mu is held.
func (f *Flow) setUnsentLocked(mf *Macroflow, n int) {
	n = min(max(n, 0), f.outstanding)
	mf.unsent += n - f.unsent
	f.unsent = n
}

// windowRate returns the flow's share of window/srtt (0 without an RTT
// sample), and whether the window is below ssthresh: the pacing rate of
// a Conn. Not Query's rate: a delivery rate that fell during a loss
// recovery would hold the pacing, and with it the delivery rate, down.
func (f *Flow) windowRate() (rate float64, slowStart bool) {
	mf := f.lock()
	defer mf.mu.Unlock()
	if !mf.hasRTT || mf.srtt <= 0 {
		return 0, false
	}
	mf.ageLocked(f.m.cfg.Clock.Now())
	st := mf.ctrl.State()
	return float64(st.Window) / mf.srtt.Seconds() * mf.shareLocked(f), st.Window < st.SSThresh
}

// Query returns the flow's share of the macroflow's rate in bytes per
// second, and the macroflow's srtt and rttvar (cm_query). ok is false
// until the macroflow has an RTT sample.
func (f *Flow) Query() (rate float64, srtt, rttvar time.Duration, ok bool) {
	mf := f.lock()
	defer mf.mu.Unlock()
	mf.ageLocked(f.m.cfg.Clock.Now())
	s := f.statusLocked()
	return s.Rate, s.SRTT, s.RTTVar, mf.hasRTT
}

func (f *Flow) statusLocked() Status {
	mf := f.mf.Load()
	return Status{Rate: mf.rateLocked(f.m.cfg.Clock.Now()) * mf.shareLocked(f), SRTT: mf.srtt, RTTVar: mf.rttvar}
}

// Subscribe asks for fn to be called with the flow's status whenever its
// rate or srtt moves beyond t (cm_thresh and cmapp_update), and once at
// the first RTT sample. fn runs on the goroutine whose Update caused the
// change, after the manager's locks are released; it must not block for
// long. A flow has one subscription: a new one replaces the old. The
// returned function cancels it.
func (f *Flow) Subscribe(t Thresholds, fn func(Status)) (cancel func()) {
	for _, p := range []*float64{&t.RateDown, &t.RateUp, &t.RTTDown, &t.RTTUp} {
		if *p == 0 {
			*p = DefaultThreshold
		}
	}
	sub := &subscription{t: t, fn: fn}
	mf := f.lock()
	if f.sub == nil && !f.closed {
		mf.nsubs++
	}
	if !f.closed {
		f.sub = sub
	}
	mf.mu.Unlock()
	return func() {
		mf := f.lock()
		if f.sub == sub {
			f.sub = nil
			if !f.closed {
				mf.nsubs--
			}
		}
		mf.mu.Unlock()
	}
}

// SetMacroflow moves the flow to the macroflow named name, creating it if
// needed (RFC 3124 lets applications group flows explicitly). The flow's
// outstanding bytes and a pending request (a blocked Acquire) move with
// it; a live grant returns to the old macroflow, and the bytes of a later
// Notify count in the new one.
func (f *Flow) SetMacroflow(name string) error {
	if name == "" {
		return ErrInvalidMacroflowName
	}
	m := f.m
	var o outbox
	defer o.run() // last, after every unlock below
	m.mu.Lock()
	defer m.mu.Unlock()
	old := f.mf.Load()
	if old.key == name {
		return nil
	}
	nw, err := m.macroflowLocked(name)
	if err != nil {
		return err
	}
	// Lock both in creation order so two moves cannot deadlock.
	a, b := old, nw
	if b.seq < a.seq {
		a, b = b, a
	}
	a.mu.Lock()
	b.mu.Lock()
	defer a.mu.Unlock()
	defer b.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if len(nw.flows) >= m.cfg.MaxFlowsPerMacroflow {
		return fmt.Errorf("move flow %d to %s: %w", f.id, name, ErrTooManyFlows)
	}
	out, sub, pending, send := f.outstanding, f.sub, f.pending, f.sendFn
	old.removeLocked(f)
	if sub != nil {
		nw.nsubs++
	}
	now := m.cfg.Clock.Now()
	if len(nw.flows) == 0 {
		nw.rejoinLocked(now)
	}
	nw.flows[f] = struct{}{}
	nw.sched.Add(f)
	f.outstanding = out
	nw.outstanding += out
	nw.sent += int64(out)
	nw.lastUsed = now
	f.mf.Store(nw)
	if pending > 0 {
		// A waiting request (a blocked Acquire) waits in the new
		// macroflow.
		f.pending, f.sendFn = pending, send
		nw.sched.Wait(f)
	}
	old.dispatchLocked(now, &o)
	nw.dispatchLocked(now, &o)
	return nil
}

// Close closes the flow (cm_close): its grant and outstanding bytes
// return to the macroflow, and a blocked Acquire returns ErrClosed. When
// the last flow of a macroflow closes, the macroflow's state is
// remembered for Config.RememberTTL. Close is idempotent.
func (f *Flow) Close() error {
	var o outbox
	mf := f.lock()
	if f.closed {
		mf.mu.Unlock()
		return nil
	}
	mf.closeLocked(f)
	mf.dispatchLocked(f.m.cfg.Clock.Now(), &o)
	mf.notifyLocked(&o)
	mf.mu.Unlock()
	o.run()
	return nil
}
