package congestion

import (
	"sync"
	"time"
)

// Macroflow is a group of flows that share one congestion window and one
// RTT estimate: by default all flows to one destination address.
type Macroflow struct {
	m   *Manager
	key string
	seq uint64 // creation order, for lock ordering in SetMacroflow

	mu    sync.Mutex
	ctrl  Controller
	sched Scheduler
	flows map[*Flow]struct{}

	srtt, rttvar, minRTT time.Duration
	hasRTT               bool
	outstanding          int   // bytes notified sent, not yet acked or lost
	unsent               int   // bytes of outstanding not yet sent by the host
	sent                 int64 // bytes ever made outstanding; sent-outstanding are done
	recover              int64 // sent at the last congestion signal passed on
	recovering           bool  // a signal was passed on and recover is not yet done
	granted              int   // bytes granted, not yet notified

	roundStart time.Time // start of the current srtt-long round
	roundBase  int       // window at roundStart: growth cap within the round
	lastUsed   time.Time // last open, close or update: LRU and RememberTTL
	lastFb     time.Time // last Update with feedback
	nextScan   time.Time // next scan for stale outstanding bytes

	timer      Timer
	timerAt    time.Time // when timer fires; zero when not armed
	nextExpiry time.Time // no grant expires before this; zero: no grant
	nsubs      int       // flows with a subscription

	dr    deliveryRate   // for Query while the network limits the macroflow
	stats MacroflowStats // counters
}

// MacroflowStats is a snapshot of a macroflow's state.
type MacroflowStats struct {
	Key              string
	Flows            int
	Window, SSThresh int       // bytes
	Outstanding      int       // bytes sent and not yet acked or lost
	Unsent           int       // bytes of Outstanding still queued in the sending host
	LastFeedback     time.Time // last Update that reported acked or lost bytes or ECN
	Granted          int       // bytes granted and not yet notified
	Waiting          int       // flows with a request pending
	SRTT, RTTVar     time.Duration
	Rate             float64 // bytes per second, as Flow.Query's before the split; 0 without an RTT sample
	ExpiredGrants    int     // grants that expired unused
	CappedUpdates    int     // updates whose nrecd/nlost or growth were capped
	StaleReleased    int     // bytes released because their flow stopped updating
	MergedSignals    int     // loss or ECN signals within a loss episode already signalled
	LocalTimeouts    int     // NoFeedback taken as a loss: other feedback came within an srtt
}

func newMacroflow(m *Manager, key string, now time.Time) *Macroflow {
	c := m.cfg
	m.nextID++
	return &Macroflow{
		m:   m,
		key: key,
		seq: m.nextID,
		ctrl: c.NewController(ControllerConfig{
			MSS: c.MSS, InitialWindow: c.InitialWindow, MinWindow: c.MinWindow,
			MaxWindow: c.MaxWindow, Now: now,
		}),
		sched:    c.NewScheduler(c.MSS),
		flows:    make(map[*Flow]struct{}),
		lastUsed: now,
	}
}

// Key returns the macroflow's name.
func (mf *Macroflow) Key() string { return mf.key }

// Stats returns a snapshot of the macroflow's state, aged to now.
func (mf *Macroflow) Stats() MacroflowStats {
	mf.mu.Lock()
	defer mf.mu.Unlock()
	mf.ageLocked(mf.m.cfg.Clock.Now())
	s := mf.stats
	st := mf.ctrl.State()
	s.Key, s.Flows = mf.key, len(mf.flows)
	s.Window, s.SSThresh = st.Window, st.SSThresh
	s.Outstanding, s.Granted, s.Unsent = mf.outstanding, mf.granted, mf.unsent
	for f := range mf.flows {
		if f.pending > 0 {
			s.Waiting++
		}
	}
	s.SRTT, s.RTTVar = mf.srtt, mf.rttvar
	s.LastFeedback = mf.lastFb
	s.Rate = mf.rateLocked(mf.m.cfg.Clock.Now())
	return s
}

// ageLocked ages the window up to now (see ageIdleLocked).
func (mf *Macroflow) ageLocked(now time.Time) { mf.ageIdleLocked(now, mf.idleLocked()) }

// idleLocked reports whether the macroflow has nothing outstanding and
// nothing granted: its flows had nothing to send.
func (mf *Macroflow) idleLocked() bool { return mf.outstanding == 0 && mf.granted == 0 }

// ageIdleLocked ages the window up to now, as TCP tells the two cases
// apart. While bytes are outstanding and no feedback comes, the ACK path
// is silent: the window halves every srtt (RFC 3124 section 5.2,
// EXPERIMENT E6). While idle, the application had nothing to send, which
// says nothing about the path: the window halves once per RTO-like period,
// max(srtt+4*rttvar, IdleAgingPeriod), and never below the restart window
// min(InitialWindow, window) (RFC 2861, RFC 5681 section 4.1, Linux's
// tcp_cwnd_restart). Aging per srtt there took a 1 MB window to the
// floor within 20 ms on a LAN, where a Conn's srtt is the 2 ms poll
// interval, and every transfer after a client's think time restarted at
// two segments (5 to 18 times slower through icapd's proxy).
func (mf *Macroflow) ageIdleLocked(now time.Time, idle bool) {
	if !idle {
		mf.ctrl.Age(now, mf.srtt)
		return
	}
	if mf.srtt <= 0 {
		return
	}
	restart := min(mf.m.cfg.InitialWindow, mf.ctrl.Window())
	mf.ctrl.Age(now, max(mf.srtt+4*mf.rttvar, mf.m.cfg.IdleAgingPeriod))
	if st := mf.ctrl.State(); st.Window < restart {
		st.Window = restart
		mf.ctrl.SetState(st)
	}
}

// restartLocked ends an idle period before the first grant: the window
// is aged for the idle time, and the controller's aging clock restarts
// now (a Feedback with nothing acked), so that the silence of the ACK
// path is counted from the restart, not from the last ACK before the
// idle period.
func (mf *Macroflow) restartLocked(now time.Time) {
	mf.ageIdleLocked(now, true)
	mf.ctrl.OnFeedback(Feedback{
		Now: now, SRTT: mf.srtt, RTTVar: mf.rttvar, MinRTT: mf.minRTT, HasFeedback: true,
	})
}

// rateLocked returns the macroflow's rate: while the network limits it,
// the rate at which its bytes were acknowledged over the last srtt (what
// it achieves; while no ACK comes, it falls); while idle, the last such
// rate measured (what it achieved when it last had enough to send: the
// window kept over an idle period says nothing about a slow receiver);
// otherwise window/srtt (what it may send). Window/srtt alone
// overestimates a busy macroflow: the window counts granted bytes not
// yet in flight, and a sawtooth window runs ahead of the smoothed srtt
// (EXPERIMENT E5).
func (mf *Macroflow) rateLocked(now time.Time) float64 {
	if !mf.hasRTT || mf.srtt <= 0 {
		return 0
	}
	if mf.outstanding > 0 && now.Sub(mf.dr.limitedAt) <= mf.srtt {
		if r, ok := mf.dr.rate(now, max(mf.srtt, minRateInterval)); ok {
			return r
		}
	}
	if mf.idleLocked() && mf.dr.limitedRate > 0 {
		return mf.dr.limitedRate
	}
	return float64(mf.ctrl.Window()) / mf.srtt.Seconds()
}

// minRateInterval is the shortest span of the delivery rate: shorter
// spans see single ACK bunches and receive-side bursts.
const minRateInterval = 100 * time.Millisecond

// deliveryRate measures the rate at which a macroflow's bytes reach the
// receiver (acked, or SACKed for a Conn), over a sliding span of one srtt.
type deliveryRate struct {
	limitedAt   time.Time // last time the window or the host's queue held bytes back
	limitedRate float64   // the rate at the last ACK within an srtt of limitedAt; 0: none
	total       int64     // bytes acked so far
	ring        [32]drPoint
	n, head     int // points in ring; index of the newest
}

type drPoint struct {
	at    time.Time
	total int64
}

// ack counts n acked bytes at now. Points closer than span/16 are merged,
// so the ring covers at least two spans.
func (d *deliveryRate) ack(now time.Time, n int, span time.Duration) {
	d.total += int64(n)
	if d.n > 0 && now.Sub(d.ring[d.head].at) < span/16 {
		d.ring[d.head].total = d.total
		return
	}
	d.head = (d.head + 1) % len(d.ring)
	d.ring[d.head] = drPoint{now, d.total}
	d.n = min(d.n+1, len(d.ring))
}

// ackLimited is ack that also keeps limitedRate while the network limits
// the macroflow (the last limit was at most srtt ago).
func (d *deliveryRate) ackLimited(now time.Time, n int, srtt time.Duration) {
	span := max(srtt, minRateInterval)
	d.ack(now, n, span)
	if now.Sub(d.limitedAt) <= srtt {
		if r, ok := d.rate(now, span); ok {
			d.limitedRate = r
		}
	}
}

// rate returns the bytes acked between the newest point and the last
// point at least span before it, over that time: the rate of the last
// srtt, not diluted by the time since the last feedback was read. Once
// no ACK came for half a span it runs to now instead, and falls. false
// when the points do not reach back half a span.
func (d *deliveryRate) rate(now time.Time, span time.Duration) (float64, bool) {
	if d.n == 0 {
		return 0, false
	}
	to := d.ring[d.head]
	from := to
	for i := range d.n {
		from = d.ring[(d.head-i+len(d.ring))%len(d.ring)]
		if to.at.Sub(from.at) >= span {
			break
		}
	}
	end := to.at
	if now.Sub(to.at) > span/2 {
		end = now
	}
	el := end.Sub(from.at)
	if el < span/2 {
		return 0, false
	}
	return float64(to.total-from.total) / el.Seconds(), true
}

// idleSince reports whether the macroflow has no open flow, and since
// when it was last used.
func (mf *Macroflow) idleSince() (bool, time.Time) {
	mf.mu.Lock()
	defer mf.mu.Unlock()
	return len(mf.flows) == 0, mf.lastUsed
}

// add puts f into the macroflow. m.mu is held.
func (mf *Macroflow) add(f *Flow) error {
	mf.mu.Lock()
	defer mf.mu.Unlock()
	c := &mf.m.cfg
	if len(mf.flows) >= c.MaxFlowsPerMacroflow {
		return ErrTooManyFlows
	}
	now := c.Clock.Now()
	if len(mf.flows) == 0 {
		mf.rejoinLocked(now)
	}
	mf.flows[f] = struct{}{}
	mf.sched.Add(f)
	f.mf.Store(mf)
	f.lastFeedback = now
	mf.lastUsed = now
	return nil
}

// rejoinLocked prepares a remembered (flow-less) macroflow for a new flow
// (RFC 9040 temporal sharing): past RememberTTL it starts afresh;
// otherwise it keeps ssthresh, srtt and rttvar, and its window, aged for
// the idle time, but never below the initial window.
func (mf *Macroflow) rejoinLocked(now time.Time) {
	c := &mf.m.cfg
	if now.Sub(mf.lastUsed) > c.RememberTTL {
		mf.ctrl = c.NewController(ControllerConfig{
			MSS: c.MSS, InitialWindow: c.InitialWindow, MinWindow: c.MinWindow,
			MaxWindow: c.MaxWindow, Now: now,
		})
		mf.srtt, mf.rttvar, mf.minRTT, mf.hasRTT = 0, 0, 0, false
		mf.dr.limitedRate = 0
		mf.roundStart = time.Time{}
		return
	}
	mf.ageLocked(now)
	if st := mf.ctrl.State(); st.Window < c.InitialWindow {
		st.Window = c.InitialWindow
		mf.ctrl.SetState(st)
	}
	mf.roundStart = time.Time{}
}

// closeLocked marks f closed, wakes its blocked Acquire and removes it.
func (mf *Macroflow) closeLocked(f *Flow) {
	f.closed = true
	close(f.closedCh)
	mf.removeLocked(f)
}

// remove takes f out of the macroflow, releasing its grant and its
// outstanding bytes. mf.mu is held.
func (mf *Macroflow) removeLocked(f *Flow) {
	if _, ok := mf.flows[f]; !ok {
		return
	}
	if f.grant.N > 0 {
		mf.granted -= f.grant.N
		f.grant = Grant{}
	}
	mf.outstanding -= f.outstanding
	f.outstanding = 0
	f.setUnsentLocked(mf, 0)
	f.preacked = 0
	f.pending = 0
	mf.sched.Remove(f)
	if f.sub != nil {
		mf.nsubs--
	}
	delete(mf.flows, f)
	mf.lastUsed = mf.m.cfg.Clock.Now()
}

// delivery is a grant to hand to a flow's callback once mf.mu is released.
type delivery struct {
	fn func(Grant)
	g  Grant
}

// notice is a status to hand to a flow's subscriber once mf.mu is released.
type notice struct {
	fn func(Status)
	s  Status
}

// outbox collects what must run after mf.mu is released. Fixed arrays
// keep the common case free of allocations (an outbox lives on its
// caller's stack: it must not point into itself).
type outbox struct {
	grants  smallBuf[delivery]
	notices smallBuf[notice]
}

func (o *outbox) grant(d delivery) { o.grants.add(d) }
func (o *outbox) notice(n notice)  { o.notices.add(n) }

func (o *outbox) run() {
	o.grants.each(func(d delivery) { d.fn(d.g) })
	o.notices.each(func(n notice) { n.fn(n.s) })
}

// smallBuf is a list held in an array until it overflows into more.
type smallBuf[T any] struct {
	a    [4]T
	n    int
	more []T
}

func (b *smallBuf[T]) add(x T) {
	if b.n < len(b.a) {
		b.a[b.n] = x
		b.n++
		return
	}
	b.more = append(b.more, x)
}

func (b *smallBuf[T]) each(fn func(T)) {
	for i := range b.n {
		fn(b.a[i])
	}
	for _, x := range b.more {
		fn(x)
	}
}

// grantTTL is how long a grant made now stays valid.
func (mf *Macroflow) grantTTL() time.Duration {
	return max(mf.srtt, mf.m.cfg.GrantTimeout)
}

// dispatchLocked expires overdue grants and stale bytes, then grants
// window space to waiting flows in the scheduler's order.
func (mf *Macroflow) dispatchLocked(now time.Time, o *outbox) {
	c := &mf.m.cfg
	mf.expireLocked(now)
	if mf.idleLocked() && mf.waitingLocked() {
		mf.restartLocked(now)
	}
	w := mf.ctrl.Window()
	for {
		// Bytes still queued in the host are not in the network: the
		// window is what is in flight (RFC 3124's outstanding bytes).
		inUse := mf.outstanding - mf.unsent + mf.granted
		avail := w - inUse
		if avail < c.MSS {
			if inUse > 0 {
				if mf.waitingLocked() {
					mf.dr.limitedAt = now
				}
				return
			}
			avail = c.MSS // never deadlock on a window below one MSS
		}
		f := mf.sched.Next()
		if f == nil {
			return
		}
		n := min(f.pending, avail, c.MaxGrant)
		f.pending = 0
		f.grant = Grant{N: n, Expires: now.Add(mf.grantTTL())}
		mf.granted += n
		mf.sched.Charge(f, n)
		if mf.nextExpiry.IsZero() || f.grant.Expires.Before(mf.nextExpiry) {
			mf.nextExpiry = f.grant.Expires
		}
		o.grant(delivery{fn: f.sendFn, g: f.grant})
		f.sendFn = nil
		mf.armLocked(now, f.grant.Expires)
	}
}

// waitingLocked reports whether a flow has a request pending.
func (mf *Macroflow) waitingLocked() bool {
	for f := range mf.flows {
		if f.pending > 0 {
			return true
		}
	}
	return false
}

// expireLocked returns to the macroflow the grants past their expiry and
// the outstanding bytes of flows silent for longer than StaleTimeout.
func (mf *Macroflow) expireLocked(now time.Time) {
	scanGrants := !mf.nextExpiry.IsZero() && !now.Before(mf.nextExpiry)
	scanStale := mf.outstanding > 0 && !now.Before(mf.nextScan)
	if !scanGrants && !scanStale {
		return
	}
	c := &mf.m.cfg
	stale := max(c.StaleTimeout, 4*mf.srtt)
	if scanStale {
		mf.nextScan = now.Add(c.GrantTimeout)
	}
	if scanGrants {
		mf.nextExpiry = time.Time{}
	}
	for f := range mf.flows {
		if scanGrants && f.grant.N > 0 && !now.Before(f.grant.Expires) {
			mf.granted -= f.grant.N
			mf.stats.ExpiredGrants++
			if mf.m.debug() {
				mf.m.log.Debug("congestion: grant expired", "macroflow", mf.key, "flow", f.id, "bytes", f.grant.N)
			}
			f.grant = Grant{}
		}
		if scanGrants && f.grant.N > 0 && (mf.nextExpiry.IsZero() || f.grant.Expires.Before(mf.nextExpiry)) {
			mf.nextExpiry = f.grant.Expires
		}
		if scanStale && f.outstanding > 0 && now.Sub(f.lastFeedback) >= stale {
			if mf.m.debug() {
				mf.m.log.Debug("congestion: releasing stale bytes", "macroflow", mf.key, "flow", f.id, "bytes", f.outstanding)
			}
			mf.stats.StaleReleased += f.outstanding
			mf.outstanding -= f.outstanding
			f.outstanding = 0
			f.setUnsentLocked(mf, 0)
		}
	}
}

// armLocked makes sure the expiry timer fires no later than at.
func (mf *Macroflow) armLocked(now, at time.Time) {
	if !mf.timerAt.IsZero() && !mf.timerAt.After(at) {
		return
	}
	mf.timerAt = at
	d := at.Sub(now)
	if mf.timer == nil {
		mf.timer = mf.m.cfg.Clock.AfterFunc(d, mf.onTimer)
		return
	}
	mf.timer.Reset(d)
}

// onTimer expires grants and hands their bytes to waiting flows.
func (mf *Macroflow) onTimer() {
	var o outbox
	mf.mu.Lock()
	now := mf.m.cfg.Clock.Now()
	mf.timerAt = time.Time{}
	mf.dispatchLocked(now, &o)
	// Re-arm for the earliest grant still live.
	var next time.Time
	for f := range mf.flows {
		if f.grant.N > 0 && (next.IsZero() || f.grant.Expires.Before(next)) {
			next = f.grant.Expires
		}
	}
	if !next.IsZero() {
		mf.armLocked(now, next)
	}
	mf.mu.Unlock()
	o.run()
}

// episodeLocked passes on one congestion signal per loss episode of the
// macroflow, as TCP reduces its window once per window of data (RFC 6582's
// "recover"): after a LossFeedback or ExplicitCongestion, the signals of
// any flow are reported to the controller as NoCongestion (their bytes
// still count as lost) until every byte outstanding at the signal is
// acknowledged or lost. The controller's once per srtt is not enough for
// a macroflow: each connection detects the losses of one overflow of the
// bottleneck on its own, and slow ones (a few segments in flight, no
// three duplicate ACKs) an srtt or more after the others; a macroflow of
// four reduced its window two or three times for what reduced an ordinary
// flow's once (EXPERIMENT E1). mf.mu is held.
func (mf *Macroflow) episodeLocked(mode LossMode) LossMode {
	done := mf.sent - int64(mf.outstanding)
	if mf.recovering && done >= mf.recover {
		mf.recovering = false
	}
	switch mode {
	case LossFeedback, ExplicitCongestion:
		if mf.recovering {
			mf.stats.MergedSignals++
			return NoCongestion
		}
		mf.recovering, mf.recover = true, mf.sent
	case NoFeedback:
		mf.recovering = false
	}
	return mode
}

// sampleRTTLocked folds an RTT sample into srtt and rttvar (RFC 6298).
func (mf *Macroflow) sampleRTTLocked(rtt time.Duration) {
	if rtt <= 0 {
		return
	}
	if !mf.hasRTT {
		mf.srtt, mf.rttvar, mf.minRTT, mf.hasRTT = rtt, rtt/2, rtt, true
		return
	}
	d := mf.srtt - rtt
	if d < 0 {
		d = -d
	}
	mf.rttvar = (3*mf.rttvar + d) / 4
	mf.srtt = (7*mf.srtt + rtt) / 8
	mf.minRTT = min(mf.minRTT, rtt)
}

// shareLocked returns the fraction of the macroflow's rate that belongs
// to f: its weight over the weights of the flows in use (f included).
func (mf *Macroflow) shareLocked(f *Flow) float64 {
	return share(f, mf.activeWeightLocked())
}

// activeWeightLocked sums the weights of the flows in use.
func (mf *Macroflow) activeWeightLocked() int {
	total := 0
	for g := range mf.flows {
		if g.active() {
			total += g.info.Weight
		}
	}
	return total
}

// share is f's part of a macroflow whose flows in use weigh active.
func share(f *Flow, active int) float64 {
	if !f.active() {
		active += f.info.Weight
	}
	if active <= 0 {
		return 1
	}
	return float64(f.info.Weight) / float64(active)
}

// notifyLocked queues a status for every subscriber whose thresholds the
// current rate or srtt crossed.
func (mf *Macroflow) notifyLocked(o *outbox) {
	if !mf.hasRTT || mf.nsubs == 0 {
		return
	}
	active := mf.activeWeightLocked()
	rate := mf.rateLocked(mf.m.cfg.Clock.Now())
	for f := range mf.flows {
		if f.sub == nil {
			continue
		}
		s := Status{Rate: rate * share(f, active), SRTT: mf.srtt, RTTVar: mf.rttvar}
		if f.sub.crossed(s) {
			f.sub.last = s
			o.notice(notice{fn: f.sub.fn, s: s})
		}
	}
}
