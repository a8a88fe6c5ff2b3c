package congestion

import (
	"math"
	"time"
)

// CUBIC constants (RFC 9438 sections 4.5 and 4.6).
const (
	cubicBeta = 0.7 // multiplicative decrease factor
	cubicC    = 0.4 // segments per second cubed
	// cubicAlpha is the additive increase of the Reno-friendly estimate
	// per window acked, 3(1-beta)/(1+beta), so that it matches Reno's
	// average rate despite the gentler decrease.
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
)

// Cubic is a Controller that gives a macroflow the window of one CUBIC
// flow (RFC 9438), Linux's default: slow start below ssthresh, then the
// cubic function of the time since the last decrease, never below the
// Reno-friendly estimate; LossFeedback and ExplicitCongestion reduce the
// window to 0.7 of itself (with fast convergence), at most once per
// srtt; NoFeedback sets it to one MSS; aging is that of [AIMD].
//
// Against ordinary CUBIC flows on the same bottleneck, a macroflow run by
// AIMD gets less than one flow's share, since it halves where they keep
// 70%; with Cubic a macroflow of several connections takes one flow's
// share (EXPERIMENT E1).
type Cubic struct {
	window

	epoch   time.Time // start of the current congestion avoidance epoch
	wMax    float64   // window before the last decrease, segments
	k       float64   // seconds from epoch until the cubic reaches wMax
	origin  float64   // the cubic's plateau, segments
	wEst    float64   // Reno-friendly estimate, segments
	pending float64   // fractional growth not yet applied, bytes
}

var _ Controller = (*Cubic)(nil)

// NewCubic returns a Cubic controller starting at cfg.InitialWindow with
// an unbounded ssthresh (cfg.MaxWindow).
func NewCubic(cfg ControllerConfig) *Cubic {
	return &Cubic{window: newWindow(cfg)}
}

// SetState implements Controller. It starts a new epoch.
func (c *Cubic) SetState(s WindowState) {
	c.window.SetState(s)
	c.epoch = time.Time{}
}

// Age implements Controller.
func (c *Cubic) Age(now time.Time, srtt time.Duration) {
	if c.ager.age(now, srtt, &c.cwnd, &c.ssthresh, c.cfg.MinWindow) {
		c.epoch = time.Time{}
	}
}

func (c *Cubic) segs(bytes int) float64 { return float64(bytes) / float64(c.cfg.MSS) }

// decrease applies the multiplicative decrease and remembers wMax.
func (c *Cubic) decrease(now time.Time) {
	w := c.segs(c.cwnd)
	if w < c.wMax {
		// Fast convergence: a flow whose window shrank since the last
		// decrease releases bandwidth for newer flows.
		c.wMax = w * (1 + cubicBeta) / 2
	} else {
		c.wMax = w
	}
	c.ssthresh = max(int(float64(c.cwnd)*cubicBeta), c.cfg.MinWindow)
	c.lastDecrease = now
	c.epoch = time.Time{}
}

// OnFeedback implements Controller.
func (c *Cubic) OnFeedback(fb Feedback) {
	if fb.HasFeedback || fb.Mode == NoFeedback {
		c.ager.feedback(fb.Now)
	}
	canDecrease := c.canDecrease(fb)
	switch fb.Mode {
	case LossFeedback, ExplicitCongestion:
		if canDecrease {
			c.decrease(fb.Now)
			c.cwnd = c.ssthresh
		}
		return
	case NoFeedback:
		if canDecrease {
			c.decrease(fb.Now)
		}
		c.cwnd = c.cfg.MSS
		return
	}
	acked, avoid := c.slowStart(fb)
	if !avoid {
		return
	}
	w := c.segs(c.cwnd)
	if c.epoch.IsZero() {
		c.epoch = fb.Now
		c.origin, c.k = w, 0
		if w < c.wMax {
			c.origin = c.wMax
			c.k = math.Cbrt((c.wMax - w) / cubicC)
		}
		c.wEst = w
	}
	// The target one srtt ahead (RFC 9438 section 4.2).
	t := fb.Now.Sub(c.epoch).Seconds() + fb.SRTT.Seconds()
	target := c.origin + cubicC*math.Pow(t-c.k, 3)
	target = min(max(target, w), 1.5*w)
	seg := float64(acked) / float64(c.cfg.MSS)
	c.wEst += cubicAlpha * seg / w
	var grow float64 // bytes
	if c.wEst > target {
		grow = (c.wEst - w) * float64(c.cfg.MSS)
	} else {
		grow = (target - w) / w * float64(acked)
	}
	c.pending += max(grow, 0)
	if n := int(c.pending); n > 0 {
		c.pending -= float64(n)
		c.cwnd = min(c.cwnd+n, c.cfg.MaxWindow)
	}
}
