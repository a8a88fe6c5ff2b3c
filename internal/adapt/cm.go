package adapt

import (
	"context"
	"math"
	"net/netip"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/policy"
)

// Defaults of CM.
const (
	// DefaultCMMinBytes is how much a client host must have been sent
	// through its macroflow before the macroflow's rate is trusted: the
	// initial window over the first RTT sample says nothing about the
	// path's bandwidth.
	DefaultCMMinBytes = 32 << 10
	// DefaultCMMaxIdle is how long after the host's last write the
	// macroflow's rate still stands for the client. An idle macroflow's
	// window ages (halves every srtt without feedback), so its rate then
	// measures the RTT, not the bandwidth; the reports the proxy made of
	// the finished transfers (spand, the store) answer instead.
	DefaultCMMaxIdle = 2 * time.Second
)

// HostActivity tells how much a client host was sent and when the last
// write to it ended. The proxy's meter (internal/proxy.Meter) implements
// it.
type HostActivity interface {
	Activity(addr netip.Addr) (written int64, last time.Time, ok bool)
}

// CM is a policy.Predictor answering from the congestion manager
// (RFC 3124 cm_query): the rate (window/srtt) and srtt of the client's
// macroflow, the one all the proxy's connections to that host share. It
// answers only while the figure is live: the macroflow has an RTT sample,
// the host was sent at least MinBytes, and the last write to it ended
// within MaxIdle. Its answer is a continuous measurement, not a count of
// reports, so it passes any min_reports. Safe for concurrent use.
type CM struct {
	// Manager is the proxy's congestion manager (required).
	Manager *congestion.Manager
	// Activity says what was sent to each host; nil skips the MinBytes
	// and MaxIdle checks (any macroflow with an RTT sample answers).
	Activity HostActivity
	// MinBytes and MaxIdle: zero means DefaultCMMinBytes and
	// DefaultCMMaxIdle.
	MinBytes int64
	MaxIdle  time.Duration

	// now is the clock (tests); nil means time.Now.
	now func() time.Time
}

// Predict implements policy.Predictor.
func (c *CM) Predict(_ context.Context, addr netip.Addr) (policy.Prediction, bool) {
	if c == nil || c.Manager == nil || !addr.IsValid() {
		return policy.Prediction{}, false
	}
	mf := c.Manager.Macroflow(c.Manager.MacroflowKey(congestion.FlowInfo{Dst: netip.AddrPortFrom(addr.Unmap(), 0)}))
	if mf == nil {
		return policy.Prediction{}, false
	}
	var age time.Duration
	if c.Activity != nil {
		written, last, ok := c.Activity.Activity(addr.Unmap())
		minBytes, maxIdle := c.MinBytes, c.MaxIdle
		if minBytes <= 0 {
			minBytes = DefaultCMMinBytes
		}
		if maxIdle <= 0 {
			maxIdle = DefaultCMMaxIdle
		}
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		age = now().Sub(last)
		if !ok || written < minBytes || age > maxIdle {
			return policy.Prediction{}, false
		}
	}
	st := mf.Stats()
	if st.SRTT <= 0 || st.Rate <= 0 {
		return policy.Prediction{}, false
	}
	return policy.Prediction{Throughput: st.Rate, RTT: st.SRTT, Reports: math.MaxInt32, Age: max(age, 0)}, true
}

var _ policy.Predictor = (*CM)(nil)
