package adapt

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Defaults of Spand.
const (
	// DefaultPredictTimeout bounds one prediction. The policy asks at most
	// once per ICAP message and the message waits for the answer, so a
	// slow or absent spand must cost little; spand.Client caches answers
	// for spand.DefaultCacheTTL, so most messages do not wait at all.
	DefaultPredictTimeout = 250 * time.Millisecond
	// DefaultWarnInterval is the least time between two log lines about
	// failing predictions, so that a spand that is down does not flood
	// the log with one line per message.
	DefaultWarnInterval = time.Minute
)

// PredictionSource answers spand predictions. *spand.Client (the spand
// daemon's API over HTTP) and every spand.Store (such as the in-process
// *spand.MemoryStore) implement it.
type PredictionSource interface {
	Predict(ctx context.Context, addr netip.Addr, class spand.Class) (spand.Prediction, error)
}

var (
	_ PredictionSource = (*spand.Client)(nil)
	_ PredictionSource = (spand.Store)(nil)
)

// Spand is a policy.Predictor answering from spand's passive measurements:
// how fast the client at an address has been receiving. A prediction
// spand does not know (source "none"), an error or a timeout is "no
// measurement", and the policy then goes on without one. Safe for
// concurrent use.
type Spand struct {
	// Source answers the predictions (required).
	Source PredictionSource
	// Class is the application class asked for; "" means spand.ClassWeb,
	// the class of the HTTP transfers icapd adapts.
	Class spand.Class
	// Timeout bounds one prediction; zero means DefaultPredictTimeout.
	Timeout time.Duration
	// Logger receives failures, at most one line per DefaultWarnInterval;
	// nil means slog.Default().
	Logger *slog.Logger

	lastWarn atomic.Int64 // unix ns of the last failure logged
	failures atomic.Int64
}

// Predict implements policy.Predictor.
func (s *Spand) Predict(ctx context.Context, addr netip.Addr) (policy.Prediction, bool) {
	class := s.Class
	if class == "" {
		class = spand.ClassWeb
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultPredictTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := s.Source.Predict(ctx, addr, class)
	if err != nil {
		s.failures.Add(1)
		s.warn(ctx, addr, err)
		return policy.Prediction{}, false
	}
	return Convert(p)
}

// Failures returns how many predictions failed (error or timeout).
func (s *Spand) Failures() int64 { return s.failures.Load() }

func (s *Spand) warn(ctx context.Context, addr netip.Addr, err error) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(DefaultWarnInterval) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(ctx, slog.LevelWarn, "spand prediction failed; deciding without a measurement",
		slog.String("addr", addr.String()), slog.String("err", err.Error()),
		slog.Int64("failures", s.failures.Load()))
}

// Convert turns a spand prediction into the policy's: throughput in bytes
// per second, the median RTT, the number of live reports and the age of
// the newest. It reports false when spand knows nothing about the address
// or measured no throughput.
func Convert(p spand.Prediction) (policy.Prediction, bool) {
	if !p.Known() || p.Throughput <= 0 {
		return policy.Prediction{}, false
	}
	return policy.Prediction{
		Throughput: p.Throughput,
		RTT:        time.Duration(p.RTT * float64(time.Millisecond)),
		Reports:    p.Reports,
		Age:        time.Duration(p.Age * float64(time.Second)),
	}, true
}

var _ policy.Predictor = (*Spand)(nil)
