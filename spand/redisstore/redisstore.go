// Package redisstore keeps spand's aggregated reports in Redis, so that
// many capture hosts and many icapd nodes share one view of the network.
//
// # Layout
//
// Each aggregation key (see spand.Key: remote host, local host or remote
// prefix, and a class) is a Redis list PREFIX+"k:"+key holding the newest
// spand.Config.MaxSamples samples (32 bytes each, binary) (LPUSH, LTRIM, PEXPIRE MaxAge),
// and a sorted set PREFIX+"index" scores every key by the time of its
// newest sample, for listing. Every node computes predictions from the
// same samples with the same spand.Config.Estimate, so all nodes with the
// same configuration and clock give the same answer. A prediction costs
// one pipelined round trip (three LRANGEs).
//
// Redis memory is bounded per key (MaxSamples samples of 32 bytes) and in
// time (lists expire MaxAge after their last write; Entries trims the
// index to MaxAge), not in the number of keys: give Redis a maxmemory and
// an eviction policy (allkeys-lru) if the number of hosts seen within
// MaxAge can be very large.
//
// # When Redis is down
//
// Add never fails: reports go into a local in-memory spand.Aggregator and
// into a queue that a background goroutine writes to Redis, retrying
// every RetryInterval while Redis is unreachable. Predict and Entries
// answer from Redis and, when Redis does not answer within Timeout, from
// the local aggregator, which holds what this node accepted and the keys
// it last read from Redis (so a node that only answers keeps answering
// for the hosts it was asked about); after a failure, reads skip Redis for RetryInterval or
// until the writer gets through again, so a dead Redis costs one Timeout,
// not one per request. The queue holds at most MaxPending reports; past that the
// oldest are dropped and counted in spand_redis_dropped_total. Close
// tries once more to write the queue. The queue is in memory: it survives
// a Redis restart, not a crash of this process.
package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Defaults for the zero values of Options.
const (
	DefaultPrefix        = "spand:"
	DefaultMaxPending    = 100_000
	DefaultRetryInterval = time.Second
	DefaultTimeout       = 250 * time.Millisecond
	DefaultBatch         = 256 // reports per pipelined write
)

// Options configure a Store. Zero fields take their defaults.
type Options struct {
	Addr   string                // host:port of Redis, used when Client is nil
	Client redis.UniversalClient // an existing client; Close does not close it

	Prefix        string        // key prefix, DefaultPrefix
	Config        spand.Config  // aggregation settings; must match on every node
	MaxPending    int           // reports queued while Redis is down, DefaultMaxPending
	RetryInterval time.Duration // DefaultRetryInterval
	Timeout       time.Duration // per Redis operation, DefaultTimeout
	Logger        *slog.Logger  // nil: slog.Default
}

// Store is a spand.Store backed by Redis with an in-memory fallback.
type Store struct {
	rdb     redis.UniversalClient
	ownsRDB bool
	opts    Options
	cfg     spand.Config
	local   *spand.Aggregator

	mu      sync.Mutex
	pending []spand.Report
	headSeq uint64 // reports ever removed from the head of pending
	wake    chan struct{}
	flushMu sync.Mutex // one writer at a time keeps the queue's order

	stats struct {
		sync.Mutex
		written, errors, dropped, fallbacks uint64
	}

	downUntil atomic.Int64 // Unix ns: skip Redis reads until then

	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once

	now func() time.Time
}

// New connects to Redis (lazily: a Redis that is down now is retried) and
// starts the background writer.
func New(opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{opts: opts, cfg: opts.Config.WithDefaults(), wake: make(chan struct{}, 1), done: make(chan struct{}), now: time.Now}
	s.local = spand.NewAggregator(s.cfg)
	s.rdb = opts.Client
	if s.rdb == nil {
		if opts.Addr == "" {
			return nil, errors.New("redisstore: no Addr and no Client")
		}
		s.rdb = redis.NewClient(&redis.Options{
			Addr:            opts.Addr,
			DialTimeout:     opts.Timeout,
			ReadTimeout:     opts.Timeout,
			WriteTimeout:    opts.Timeout,
			MaxRetries:      -1, // the queue retries; a prediction falls back at once
			DisableIdentity: true,
		})
		s.ownsRDB = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.writer(ctx)
	return s, nil
}

// SetClock replaces the clock of the store and its local aggregator.
func (s *Store) SetClock(now func() time.Time) {
	s.now = now
	s.local.SetClock(now)
}

// Add implements spand.Store: the reports go to the local aggregator and
// the write queue at once; it never fails.
func (s *Store) Add(_ context.Context, reports []spand.Report) error {
	s.local.Add(reports...)
	s.mu.Lock()
	s.pending = append(s.pending, reports...)
	if over := len(s.pending) - s.opts.MaxPending; over > 0 {
		s.popLocked(uint64(over))
		s.stats.Lock()
		s.stats.dropped += uint64(over)
		s.stats.Unlock()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *Store) writer(ctx context.Context) {
	defer close(s.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backingOff := false // after a failure, new reports wait for the retry
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			if backingOff {
				continue
			}
		case <-retry.C:
			backingOff = false
		}
		if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("redisstore: write failed, reports kept in the queue", "pending", s.Pending(), "err", err)
			backingOff = true
			retry.Reset(s.opts.RetryInterval)
		}
	}
}

// Pending returns the number of reports waiting to be written to Redis.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Flush writes the queued reports to Redis and returns the first error;
// what could not be written stays queued.
func (s *Store) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for {
		s.mu.Lock()
		n := min(len(s.pending), DefaultBatch)
		batch := append([]spand.Report(nil), s.pending[:n]...)
		first := s.headSeq // sequence number of batch[0]
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err := s.write(ctx, batch); err != nil {
			s.stats.Lock()
			s.stats.errors++
			s.stats.Unlock()
			return fmt.Errorf("redisstore: write %d reports: %w", n, err)
		}
		s.downUntil.Store(0) // Redis is back: read from it again
		s.mu.Lock()
		s.ackLocked(first, n)
		s.mu.Unlock()
		s.stats.Lock()
		s.stats.written += uint64(n)
		s.stats.Unlock()
	}
}

// ackLocked removes the n reports from sequence number first on, which
// were written. Add may have dropped some of them from the head meanwhile
// (overflow): only what of them is still queued goes.
func (s *Store) ackLocked(first uint64, n int) {
	end := first + uint64(n)
	s.popLocked(end - min(s.headSeq, end))
}

// popLocked removes n reports from the head of the queue.
func (s *Store) popLocked(n uint64) {
	n = min(n, uint64(len(s.pending)))
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.headSeq += n
}

func (s *Store) listKey(k spand.Key) string { return s.opts.Prefix + "k:" + k.String() }

func (s *Store) write(ctx context.Context, reports []spand.Report) error {
	ctx, cancel := context.WithTimeout(ctx, 4*s.opts.Timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	index := s.opts.Prefix + "index"
	for i := range reports {
		r := &reports[i]
		for _, k := range s.cfg.Keys(r) {
			if k.Kind == spand.KindNone {
				continue
			}
			smp := spand.SampleFor(k, r)
			b := encodeSample(smp)
			lk := s.listKey(k)
			pipe.LPush(ctx, lk, b)
			pipe.LTrim(ctx, lk, 0, int64(s.cfg.MaxSamples-1))
			pipe.PExpire(ctx, lk, s.cfg.MaxAge)
			pipe.ZAddGT(ctx, index, redis.Z{Score: float64(smp.T / 1e6), Member: k.String()})
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// sampleSize is the encoded size of a sample: the time, then six float32s,
// little-endian. Binary, not JSON: a prediction decodes up to three lists
// of MaxSamples samples.
const sampleSize = 8 + 6*4

func encodeSample(s spand.Sample) []byte {
	b := make([]byte, 0, sampleSize)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.T))
	for _, f := range [...]float32{s.Throughput, s.RTTMin, s.RTTMedian, s.Loss, s.ResponseTime, s.ResponseRate} {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// decodeSamples skips values of the wrong size (another version's
// format) rather than failing the prediction.
func decodeSamples(vals []string) []spand.Sample {
	out := make([]spand.Sample, 0, len(vals))
	for _, v := range vals {
		if len(v) != sampleSize {
			continue
		}
		f := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32([]byte(v[8+4*i:]))) }
		out = append(out, spand.Sample{
			T:          int64(binary.LittleEndian.Uint64([]byte(v[:8]))),
			Throughput: f(0), RTTMin: f(1), RTTMedian: f(2), Loss: f(3), ResponseTime: f(4), ResponseRate: f(5),
		})
	}
	return out
}

// fallback counts a read answered from memory; err, when not nil, is a
// Redis failure that marks Redis down for RetryInterval, so the reads
// meanwhile do not each wait Timeout for a Redis that is not there.
func (s *Store) fallback(what string, err error) {
	s.stats.Lock()
	s.stats.fallbacks++
	s.stats.Unlock()
	if err != nil {
		s.downUntil.Store(time.Now().Add(s.opts.RetryInterval).UnixNano())
		s.opts.Logger.Debug("redisstore: answering from memory", "op", what, "err", err)
	}
}

// redisDown reports whether a recent failure says to skip Redis.
func (s *Store) redisDown() bool { return time.Now().UnixNano() < s.downUntil.Load() }

// Predict implements spand.Store: host, local, then prefix key from Redis
// in one round trip, or from memory when Redis does not answer.
func (s *Store) Predict(ctx context.Context, addr netip.Addr, class spand.Class) (spand.Prediction, error) {
	if s.redisDown() {
		s.fallback("predict", nil)
		return s.local.Predict(addr, class), nil
	}
	keys := s.cfg.LookupKeys(addr, class)
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	var cmds [len(keys)]*redis.StringSliceCmd
	for i, k := range keys {
		if k.Kind != spand.KindNone {
			cmds[i] = pipe.LRange(ctx, s.listKey(k), 0, -1)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.fallback("predict", err)
		return s.local.Predict(addr, class), nil
	}
	now := s.now()
	var samples [len(keys)][]spand.Sample
	for i := range keys {
		if cmds[i] == nil {
			continue
		}
		samples[i] = decodeSamples(cmds[i].Val())
		slices.Reverse(samples[i]) // oldest first, as the local ring keeps them
		// Keep what was read, to answer from if Redis goes away.
		s.local.ReplaceSamples(keys[i], samples[i])
	}
	for i, k := range keys {
		if cmds[i] == nil {
			continue
		}
		if p, ok := s.cfg.Estimate(k, samples[i], now); ok {
			p.Addr = addr
			return p, nil
		}
	}
	return spand.Prediction{Addr: addr, Class: class, Source: spand.KindNone.String()}, nil
}

// Entries implements spand.Store: the keys updated within MaxAge, from
// Redis, or from memory when Redis does not answer.
func (s *Store) Entries(ctx context.Context, limit int) ([]spand.Prediction, error) {
	if s.redisDown() {
		s.fallback("entries", nil)
		return s.local.Entries(limit), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 4*s.opts.Timeout)
	defer cancel()
	now := s.now()
	index := s.opts.Prefix + "index"
	oldest := float64((now.Add(-s.cfg.MaxAge)).UnixNano() / 1e6)
	if err := s.rdb.ZRemRangeByScore(ctx, index, "-inf", fmt.Sprintf("(%f", oldest)).Err(); err != nil {
		s.fallback("entries", err)
		return s.local.Entries(limit), nil
	}
	members, err := s.rdb.ZRevRangeByScore(ctx, index, &redis.ZRangeBy{
		Max: "+inf", Min: fmt.Sprintf("%f", oldest), Count: spand.MaxHostsLimit,
	}).Result()
	if err != nil {
		s.fallback("entries", err)
		return s.local.Entries(limit), nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.LRange(ctx, s.opts.Prefix+"k:"+m, 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.fallback("entries", err)
		return s.local.Entries(limit), nil
	}
	var out []spand.Prediction
	for i, m := range members {
		k, err := spand.ParseKey(m)
		if err != nil {
			continue // written by an incompatible version: skip, do not fail
		}
		if p, ok := s.cfg.Estimate(k, decodeSamples(cmds[i].Val()), now); ok {
			out = append(out, p)
		}
	}
	spand.SortEntries(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Metrics implements spand.Store.
func (s *Store) Metrics(w io.Writer) {
	s.local.WriteMetrics(w)
	s.stats.Lock()
	written, errs, dropped, fb := s.stats.written, s.stats.errors, s.stats.dropped, s.stats.fallbacks
	s.stats.Unlock()
	for _, m := range []struct {
		name, typ, help string
		v               float64
	}{
		{"spand_redis_written_total", "counter", "Reports written to Redis.", float64(written)},
		{"spand_redis_errors_total", "counter", "Failed pipelined writes to Redis (the reports stay queued).", float64(errs)},
		{"spand_redis_dropped_total", "counter", "Queued reports dropped because the queue was full while Redis was down.", float64(dropped)},
		{"spand_redis_fallbacks_total", "counter", "Reads answered from memory because Redis did not answer.", float64(fb)},
		{"spand_redis_pending", "gauge", "Reports waiting to be written to Redis.", float64(s.Pending())},
	} {
		promtext.Value(w, m.name, m.typ, m.help, m.v)
	}
}

// Close stops the writer, tries once more to write the queue, and closes
// the Redis client if New created it. It returns the error of that last
// write: those reports are lost.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		s.cancel()
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 4*s.opts.Timeout)
		defer cancel()
		err = s.Flush(ctx)
		if s.ownsRDB {
			if cerr := s.rdb.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}

var _ spand.Store = (*Store)(nil)
