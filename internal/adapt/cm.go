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

// Host is what the proxy knows of its recent transfers to a client host.
type Host struct {
	Written   int64     // bytes written to the host's connections
	LastWrite time.Time // when the last write ended
	// Delivered is the throughput (bytes/s) of the host's latest
	// performance report, made at DeliveredAt; 0 before the first.
	Delivered   float64
	DeliveredAt time.Time
}

// HostActivity tells what the proxy sent to a client host. The proxy's
// meter (internal/proxy.Meter) implements it.
type HostActivity interface {
	Activity(addr netip.Addr) (Host, bool)
}

// CM is a policy.Predictor answering from the congestion manager
// (RFC 3124 cm_query): the rate (window/srtt) and srtt of the client's
// macroflow, the one all the proxy's connections to that host share. It
// answers only while the figure is live: the macroflow has an RTT sample,
// the host was sent at least MinBytes, and the last write to it ended
// within MaxIdle. Its answer is a continuous measurement, not a count of
// reports, so it passes any min_reports. Safe for concurrent use.
//
// The rate is capped by what the host's connections delivered in the
// latest report of the same burst of activity (Host.Delivered, made
// within MaxIdle before the last write): at a small bandwidth-delay
// product the validated window keeps a few segments of slack over what
// is in flight, and window/srtt then overstates the rate. On a 200 kbit/s
// tbf with a 100 ms queue the macroflow said 360-460 kbit/s (medium)
// while the connection delivered 190 kbit/s (slow).
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
	st := mf.Stats()
	if st.SRTT <= 0 || st.Rate <= 0 {
		return policy.Prediction{}, false
	}
	rate, age := st.Rate, time.Duration(0)
	if c.Activity != nil {
		h, ok := c.Activity.Activity(addr.Unmap())
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
		age = now().Sub(h.LastWrite)
		if !ok || h.Written < minBytes || age > maxIdle {
			return policy.Prediction{}, false
		}
		if h.Delivered > 0 && !h.DeliveredAt.Before(h.LastWrite.Add(-maxIdle)) {
			rate = min(rate, h.Delivered)
		}
	}
	return policy.Prediction{Throughput: rate, RTT: st.SRTT, Reports: math.MaxInt32, Age: max(age, 0)}, true
}

var _ policy.Predictor = (*CM)(nil)
