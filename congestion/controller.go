package congestion

import "time"

// Controller keeps a macroflow's congestion window (RFC 3124 section 5.2).
// The manager calls it with its macroflow's lock held, so implementations
// need no locking of their own and must not block.
type Controller interface {
	// Window returns the congestion window in bytes.
	Window() int
	// OnFeedback applies one Update of the macroflow, after the
	// manager capped it and folded its RTT sample into SRTT.
	OnFeedback(fb Feedback)
	// Age applies exponential aging up to now: the window halves for
	// every srtt that passed without feedback. srtt is 0 before the
	// first RTT sample.
	Age(now time.Time, srtt time.Duration)
	// State and SetState read and overwrite the window and ssthresh
	// (temporal sharing and the manager's growth cap).
	State() WindowState
	SetState(WindowState)
}

// WindowState is the part of a controller's state the manager may read
// and restore.
type WindowState struct {
	Window, SSThresh int // bytes
}

// ControllerConfig is what a controller needs from the manager's Config.
type ControllerConfig struct {
	MSS, InitialWindow, MinWindow, MaxWindow int
	Now                                      time.Time // creation time
}

// Feedback is one Update as the controller sees it.
type Feedback struct {
	Now         time.Time
	Acked, Lost int // bytes, capped at what was outstanding
	Mode        LossMode
	RTT         time.Duration // this sample, 0 if none
	SRTT        time.Duration // after the sample; 0 before the first one
	RTTVar      time.Duration
	MinRTT      time.Duration
	InFlight    int // macroflow bytes in flight or granted after this update
	// HasFeedback: bytes were acked or lost, or ECN was echoed; or, with
	// nothing acked, the macroflow restarts after an idle period and the
	// aging clock restarts now.
	HasFeedback bool
}

// AIMD is the default Controller: window-based AIMD with slow start and
// exponential aging (RFC 3124 section 5.2, RFC 5681):
//
//   - below ssthresh the window grows by the bytes acked (slow start);
//   - above it by one MSS per window acked (additive increase);
//   - LossFeedback and ExplicitCongestion halve it (ssthresh = window/2,
//     not below MinWindow), at most once per srtt: the reports of other
//     flows about the same congestion event do not halve it again;
//   - NoFeedback (a timeout) sets it to one MSS, ssthresh to half;
//   - without feedback it halves every srtt (after the first srtt, the
//     normal wait for an ACK) down to MinWindow, keeping
//     ssthresh at least 3/4 of the window it had (RFC 2861), so that slow
//     start brings it back quickly when feedback resumes.
type AIMD struct {
	window
	acc int // bytes acked towards the next additive increase
}

var _ Controller = (*AIMD)(nil)

// NewAIMD returns an AIMD controller starting at cfg.InitialWindow with an
// unbounded ssthresh (cfg.MaxWindow).
func NewAIMD(cfg ControllerConfig) *AIMD {
	return &AIMD{window: newWindow(cfg)}
}

// window is the state the controllers share: the window, ssthresh, the
// time of the last decrease and the aging clock.
type window struct {
	cfg          ControllerConfig
	cwnd         int
	ssthresh     int
	lastDecrease time.Time
	ager
}

func newWindow(cfg ControllerConfig) window {
	return window{cfg: cfg, cwnd: cfg.InitialWindow, ssthresh: cfg.MaxWindow, ager: ager{agedUntil: cfg.Now}}
}

// Window implements Controller.
func (w *window) Window() int { return w.cwnd }

// State implements Controller.
func (w *window) State() WindowState { return WindowState{Window: w.cwnd, SSThresh: w.ssthresh} }

// SetState implements Controller.
func (w *window) SetState(s WindowState) {
	w.cwnd = min(max(s.Window, w.cfg.MSS), w.cfg.MaxWindow)
	w.ssthresh = max(s.SSThresh, w.cfg.MinWindow)
}

// slowStart grows the window by the bytes acked while it is below
// ssthresh. It returns the bytes acked, clamped so that no arithmetic of
// the caller can overflow, and whether congestion avoidance is left to do.
func (w *window) slowStart(fb Feedback) (acked int, avoid bool) {
	acked = min(fb.Acked, w.cfg.MaxWindow)
	if acked <= 0 {
		return 0, false
	}
	if w.cwnd < w.ssthresh {
		w.cwnd = min(w.cwnd+acked, w.ssthresh, w.cfg.MaxWindow)
		return acked, false
	}
	return acked, true
}

// canDecrease enforces one decrease per srtt (per macroflow, since the
// controller is the macroflow's).
func (w *window) canDecrease(fb Feedback) bool {
	return w.lastDecrease.IsZero() || fb.SRTT <= 0 || fb.Now.Sub(w.lastDecrease) >= fb.SRTT
}

// OnFeedback implements Controller.
func (a *AIMD) OnFeedback(fb Feedback) {
	if fb.HasFeedback || fb.Mode == NoFeedback {
		a.ager.feedback(fb.Now)
	}
	switch fb.Mode {
	case LossFeedback, ExplicitCongestion:
		if a.canDecrease(fb) {
			a.ssthresh = max(a.cwnd/2, a.cfg.MinWindow)
			a.cwnd = a.ssthresh
			a.acc = 0
			a.lastDecrease = fb.Now
		}
		return
	case NoFeedback:
		if a.canDecrease(fb) {
			a.ssthresh = max(a.cwnd/2, a.cfg.MinWindow)
			a.lastDecrease = fb.Now
		}
		a.cwnd = a.cfg.MSS
		a.acc = 0
		return
	}
	acked, avoid := a.slowStart(fb)
	if !avoid {
		return
	}
	a.acc += acked
	if a.acc >= a.cwnd {
		n := a.acc / a.cwnd
		a.acc -= n * a.cwnd
		a.cwnd = min(a.cwnd+n*a.cfg.MSS, a.cfg.MaxWindow)
	}
}

// Age implements Controller.
func (a *AIMD) Age(now time.Time, srtt time.Duration) {
	if a.ager.age(now, srtt, &a.cwnd, &a.ssthresh, a.cfg.MinWindow) {
		a.acc = 0
	}
}

// ager is the exponential aging shared by the controllers: the window
// halves for every srtt without feedback (after the first srtt, the
// normal wait for an ACK) down to the floor, keeping ssthresh at least
// 3/4 of the window it had (RFC 2861).
type ager struct {
	agedUntil time.Time // feedback or aging accounted up to here
	aging     bool      // aged since the last feedback
}

// feedback restarts the clock: feedback came at now.
func (g *ager) feedback(now time.Time) { g.agedUntil, g.aging = now, false }

// age ages *cwnd up to now and reports whether it halved it.
func (g *ager) age(now time.Time, srtt time.Duration, cwnd, ssthresh *int, floor int) bool {
	if srtt <= 0 {
		return false
	}
	n := int(now.Sub(g.agedUntil) / srtt)
	if !g.aging {
		// The first srtt after feedback is the normal wait for the next
		// ACK (a new window's first ACK comes one RTT after it was sent).
		n--
	}
	if n <= 0 {
		return false
	}
	if !g.aging {
		g.agedUntil, g.aging = g.agedUntil.Add(srtt), true
	}
	g.agedUntil = g.agedUntil.Add(time.Duration(n) * srtt)
	if *cwnd <= floor {
		return false
	}
	*ssthresh = max(*ssthresh, *cwnd*3/4)
	for ; n > 0 && *cwnd > floor; n-- {
		*cwnd = max(*cwnd/2, floor)
	}
	return true
}
