package congestion

import "time"

// Defaults of [Vegas]: the bytes a macroflow may keep queued at the
// bottleneck, in MSS (Brakmo and Peterson, 1995).
const (
	DefaultVegasAlpha = 2 // below: grow by one MSS per RTT
	DefaultVegasBeta  = 4 // above: shrink by one MSS per RTT
	DefaultVegasGamma = 1 // above: leave slow start
)

// Vegas is a delay-aware Controller in the manner of TCP Vegas: once per
// srtt it compares the rate the window would give on an empty path
// (window/minRTT) with the rate it gives now (window/RTT); the difference
// times minRTT is the macroflow's backlog at the bottleneck. It grows the
// window by one MSS per RTT while that backlog is under Alpha segments,
// shrinks it by one MSS above Beta, and leaves slow start (which grows
// by the bytes acked every other RTT, and measures in between) once it
// passes Gamma. Since the window is the
// macroflow's, Alpha..Beta bound the queue of all its flows together, not
// of each. Loss, ECN, NoFeedback and aging follow [AIMD]'s rules.
type Vegas struct {
	*AIMD
	Alpha, Beta, Gamma int // segments

	roundStart time.Time
	roundMin   time.Duration // smallest RTT sample of the round
	ssHold     bool          // slow start grows every other round only
}

var _ Controller = (*Vegas)(nil)

// NewVegas returns a Vegas controller with the default thresholds.
func NewVegas(cfg ControllerConfig) *Vegas {
	return &Vegas{AIMD: NewAIMD(cfg), Alpha: DefaultVegasAlpha, Beta: DefaultVegasBeta, Gamma: DefaultVegasGamma}
}

// OnFeedback implements Controller.
func (v *Vegas) OnFeedback(fb Feedback) {
	if fb.Mode != NoCongestion || fb.Acked <= 0 || fb.MinRTT <= 0 || fb.SRTT <= 0 {
		v.AIMD.OnFeedback(fb)
		return
	}
	v.agedUntil, v.aging = fb.Now, false
	if fb.RTT > 0 && (v.roundMin == 0 || fb.RTT < v.roundMin) {
		v.roundMin = fb.RTT
	}
	if v.roundStart.IsZero() {
		v.roundStart = fb.Now
	}
	if v.cwnd < v.ssthresh && !v.ssHold {
		v.cwnd = min(v.cwnd+fb.Acked, v.ssthresh, v.cfg.MaxWindow)
	}
	if fb.Now.Sub(v.roundStart) < fb.SRTT || v.roundMin == 0 {
		return
	}
	// One decision per round, on the round's least-queued RTT sample.
	mss := v.cfg.MSS
	queued := float64(v.cwnd) * float64(v.roundMin-fb.MinRTT) / float64(v.roundMin) // bytes
	v.roundStart, v.roundMin = fb.Now, 0
	if v.cwnd < v.ssthresh {
		if queued <= float64(v.Gamma*mss) {
			v.ssHold = !v.ssHold
			return
		}
		v.ssthresh, v.ssHold = v.cwnd, false
	}
	switch {
	case queued < float64(v.Alpha*mss):
		v.cwnd = min(v.cwnd+mss, v.cfg.MaxWindow)
	case queued > float64(v.Beta*mss):
		v.cwnd = max(v.cwnd-mss, v.cfg.MinWindow)
	}
	v.ssthresh = min(v.ssthresh, v.cwnd)
}
