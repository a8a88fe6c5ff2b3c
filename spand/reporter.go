package spand

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults for the zero values of Reporter.
const (
	DefaultFlushInterval = time.Second
	DefaultMaxQueue      = 10000
	DefaultShutdownWait  = 2 * time.Second
)

// Reporter sends reports to a performance server in the background, so
// that a proxy measuring its own transfers never waits on the server: Add
// queues, Run sends every FlushInterval. Reports the server could not take
// because it was unreachable, busy (429, 5xx) or refused the token stay
// queued and are retried; a batch it rejected as invalid or too large
// (400, 413, 415) is dropped and logged, since resending cannot fix it.
// The queue holds at most MaxQueue reports; beyond that Add drops the
// report and says so, and Stats counts it.
type Reporter struct {
	Client        *Client
	FlushInterval time.Duration // DefaultFlushInterval
	MaxQueue      int           // DefaultMaxQueue
	Logger        *slog.Logger  // nil: slog.Default
	// ShutdownWait is how long Run keeps trying to deliver what is
	// queued once its context is done. DefaultShutdownWait.
	ShutdownWait time.Duration

	mu       sync.Mutex
	queue    []Report
	dropped  uint64 // queue full
	sent     uint64 // accepted by the server
	rejected uint64 // refused by the server as bad input
	failures uint64 // flushes that failed and left reports queued
	flushMu  sync.Mutex
}

// ReporterStats are a Reporter's counters.
type ReporterStats struct {
	Queued   int    // reports waiting to be sent
	Sent     uint64 // reports the server accepted
	Dropped  uint64 // reports dropped because the queue was full
	Rejected uint64 // reports the server refused as invalid (not retried)
	Failures uint64 // flushes that failed (server unreachable, busy, 401); their reports stayed queued
}

// Stats returns the counters.
func (rp *Reporter) Stats() ReporterStats {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return ReporterStats{Queued: len(rp.queue), Sent: rp.sent, Dropped: rp.dropped, Rejected: rp.rejected, Failures: rp.failures}
}

// WriteMetrics writes the counters in the Prometheus text format, as
// spand_forward_* metrics.
func (rp *Reporter) WriteMetrics(w io.Writer) {
	st := rp.Stats()
	one := func(v float64) map[string]float64 { return map[string]float64{"": v} }
	writeMetric(w, "spand_forward_queued", "gauge", "Reports waiting to be forwarded.", one(float64(st.Queued)))
	writeMetric(w, "spand_forward_sent_total", "counter", "Reports the central server accepted.", one(float64(st.Sent)))
	writeMetric(w, "spand_forward_dropped_total", "counter", "Reports dropped because the forwarding queue was full.", one(float64(st.Dropped)))
	writeMetric(w, "spand_forward_rejected_total", "counter", "Reports the central server refused as invalid.", one(float64(st.Rejected)))
	writeMetric(w, "spand_forward_failures_total", "counter", "Forwarding attempts that failed and were retried.", one(float64(st.Failures)))
}

func (rp *Reporter) limit() int {
	if rp.MaxQueue <= 0 {
		return DefaultMaxQueue
	}
	return rp.MaxQueue
}

// Add validates and queues r. It returns false, without blocking, when r is
// invalid or the queue is full.
func (rp *Reporter) Add(r Report) bool {
	if r.Validate() != nil {
		return false
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.queue) >= rp.limit() {
		rp.dropped++
		return false
	}
	rp.queue = append(rp.queue, r)
	return true
}

// Queued returns the number of reports waiting and the number dropped
// because the queue was full.
func (rp *Reporter) Queued() (queued int, dropped uint64) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.queue), rp.dropped
}

// Flush sends what is queued. On error the reports not yet accepted stay
// queued, except a batch the server rejected as bad input.
func (rp *Reporter) Flush(ctx context.Context) error {
	rp.flushMu.Lock()
	defer rp.flushMu.Unlock()
	rp.mu.Lock()
	batch := rp.queue
	rp.queue = nil
	rp.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	n := rp.Client.MaxBatch
	if n <= 0 {
		n = DefaultMaxBatch
	}
	for len(batch) > 0 {
		part := batch[:min(n, len(batch))]
		err := rp.Client.post(ctx, part)
		var ae *APIError
		rejected := errors.As(err, &ae) && permanent(ae.Status)
		if rejected {
			rp.logger().Warn("spand: reports rejected by the server, dropped", "reports", len(part), "err", err)
			err = nil
		}
		rp.mu.Lock()
		if err != nil {
			rp.failures++
			// Back in front of what was queued meanwhile, oldest first;
			// beyond MaxQueue the oldest go (and are counted).
			q := append(batch, rp.queue...)
			if over := len(q) - rp.limit(); over > 0 {
				rp.dropped += uint64(over)
				q = q[over:]
			}
			rp.queue = q
			rp.mu.Unlock()
			return err
		}
		if rejected {
			rp.rejected += uint64(len(part))
		} else {
			rp.sent += uint64(len(part))
		}
		rp.mu.Unlock()
		batch = batch[len(part):]
	}
	return nil
}

// permanent reports whether a status says resending the same batch cannot
// succeed (bad input, too large), as opposed to unauthorised (the token
// may be fixed), rate-limited or a server error.
func permanent(status int) bool {
	switch status {
	case 400, 413, 415, 422:
		return true
	}
	return false
}

func (rp *Reporter) logger() *slog.Logger {
	if rp.Logger != nil {
		return rp.Logger
	}
	return slog.Default()
}

// Drain flushes until nothing is queued, trying again every
// FlushInterval while the server is unreachable, until ctx is done; then
// it returns the last error (nil when all was sent).
func (rp *Reporter) Drain(ctx context.Context) error {
	every := rp.interval()
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		err := rp.Flush(ctx)
		if err == nil {
			if q, _ := rp.Queued(); q == 0 {
				return nil
			}
			continue // queued while flushing
		}
		rp.logger().Debug("spand: report flush failed, retrying", "err", err)
		t.Reset(every)
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

func (rp *Reporter) interval() time.Duration {
	if rp.FlushInterval <= 0 {
		return DefaultFlushInterval
	}
	return rp.FlushInterval
}

// Run flushes every FlushInterval until ctx is done, then drains the
// queue (Drain) for at most ShutdownWait.
func (rp *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(rp.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wait := rp.ShutdownWait
			if wait <= 0 {
				wait = DefaultShutdownWait
			}
			fctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := rp.Drain(fctx); err != nil {
				q, _ := rp.Queued()
				rp.logger().Warn("spand: reports not sent at shutdown", "queued", q, "err", err)
			}
			return
		case <-t.C:
			if err := rp.Flush(ctx); err != nil {
				rp.logger().Debug("spand: report flush failed, retrying", "err", err)
			}
		}
	}
}
