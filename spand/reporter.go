package spand

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Defaults for the zero values of Reporter.
const (
	DefaultFlushInterval = time.Second
	DefaultMaxQueue      = 10000
)

// Reporter sends reports to a performance server in the background, so
// that a proxy measuring its own transfers never waits on the server: Add
// queues, Run sends every FlushInterval. Reports the server could not take
// because it was unreachable, busy (429, 5xx) or refused the token stay
// queued and are retried; a batch it rejected as invalid or too large
// (400, 413, 415) is dropped and logged, since resending cannot fix it. The queue holds at most MaxQueue reports; beyond that Add drops
// the report and says so.
type Reporter struct {
	Client        *Client
	FlushInterval time.Duration // DefaultFlushInterval
	MaxQueue      int           // DefaultMaxQueue
	Logger        *slog.Logger  // nil: slog.Default

	mu      sync.Mutex
	queue   []Report
	dropped uint64
	flushMu sync.Mutex
}

// Add validates and queues r. It returns false, without blocking, when r is
// invalid or the queue is full.
func (rp *Reporter) Add(r Report) bool {
	if r.Validate() != nil {
		return false
	}
	limit := rp.MaxQueue
	if limit <= 0 {
		limit = DefaultMaxQueue
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.queue) >= limit {
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
		if errors.As(err, &ae) && permanent(ae.Status) {
			rp.logger().Warn("spand: reports rejected by the server, dropped", "reports", len(part), "err", err)
			err = nil
		}
		if err != nil {
			rp.mu.Lock()
			rp.queue = append(batch, rp.queue...) // oldest first, as queued
			rp.mu.Unlock()
			return err
		}
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

// Run flushes every FlushInterval until ctx is done, then once more with
// a short deadline.
func (rp *Reporter) Run(ctx context.Context) {
	every := rp.FlushInterval
	if every <= 0 {
		every = DefaultFlushInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := rp.Flush(fctx); err != nil {
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
