package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/redisstore/redistest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStore(t testing.TB, addr string, clk *clock) *Store {
	t.Helper()
	return newStoreRetry(t, addr, clk, 50*time.Millisecond)
}

func newStoreRetry(t testing.TB, addr string, clk *clock, retry time.Duration) *Store {
	t.Helper()
	s, err := New(Options{Addr: addr, Prefix: "test:", Logger: slog.New(slog.DiscardHandler), RetryInterval: retry})
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clk.Now)
	t.Cleanup(func() { s.Close() })
	return s
}

func report(local, remote string, class spand.Class, end time.Time, thr float64) spand.Report {
	return spand.Report{
		Local: netip.MustParseAddr(local), Remote: netip.MustParseAddr(remote), Class: class,
		Start: end.Add(-time.Second), Duration: 1, Bytes: int64(thr), Throughput: thr, RTTMin: 30, RTTMedian: 40,
	}
}

// TestTwoInstancesShareOneView runs two performance servers on one Redis:
// reports sent to one are answered identically by both.
func TestTwoInstancesShareOneView(t *testing.T) {
	rs := redistest.Start(t)
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	s1, s2 := newStore(t, rs.Addr(), clk), newStore(t, rs.Addr(), clk)
	h1 := httptest.NewServer(&spand.Server{Store: s1, Logger: slog.New(slog.DiscardHandler)})
	defer h1.Close()
	h2 := httptest.NewServer(&spand.Server{Store: s2, Logger: slog.New(slog.DiscardHandler)})
	defer h2.Close()
	ctx := context.Background()

	c1 := &spand.Client{BaseURL: h1.URL, CacheTTL: -1}
	c2 := &spand.Client{BaseURL: h2.URL, CacheTTL: -1}
	// Half the reports to each server.
	for i := range 10 {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		r := report("10.0.0."+strconv.Itoa(i%3+1), "192.0.2."+strconv.Itoa(i%4), spand.ClassBulk, clk.Now(), float64(1000*(i+1)))
		if err := c.Report(ctx, []spand.Report{r}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	for _, s := range []*Store{s1, s2} {
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"192.0.2.0", "192.0.2.3", "192.0.2.77", "10.0.0.2", "198.51.100.1"} {
		addr := netip.MustParseAddr(a)
		p1, err1 := c1.Predict(ctx, addr, spand.ClassBulk)
		p2, err2 := c2.Predict(ctx, addr, spand.ClassBulk)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if p1 != p2 {
			t.Errorf("%s: instances disagree:\n %+v\n %+v", a, p1, p2)
		}
		if a != "198.51.100.1" && !p1.Known() {
			t.Errorf("%s: not known from the shared reports", a)
		}
	}
	// The shared prefix key holds every report, whichever server took it.
	p, _ := c2.Predict(ctx, netip.MustParseAddr("192.0.2.200"), spand.ClassBulk)
	if p.Source != "prefix" || p.Reports != 10 {
		t.Fatalf("prefix answer %+v, want 10 reports", p)
	}
	e1, _ := c1.Hosts(ctx, 0)
	e2, _ := c2.Hosts(ctx, 0)
	// 4 remote hosts, 3 local hosts, 1 prefix.
	if len(e1) != 8 || fmt.Sprint(e1) != fmt.Sprint(e2) {
		t.Fatalf("hosts differ or wrong count (%d):\n %v\n %v", len(e1), e1, e2)
	}
	if p.Throughput != 5000 && p.Throughput != 6000 {
		t.Fatalf("prefix median %v, want the weighted median of 1000..10000", p.Throughput)
	}

	// A third node that never took a report answers from what it last
	// read when Redis goes away.
	s3 := newStoreRetry(t, rs.Addr(), clk, time.Hour)
	want, _ := s3.Predict(ctx, netip.MustParseAddr("192.0.2.3"), spand.ClassBulk)
	rs.Stop()
	got, err := s3.Predict(ctx, netip.MustParseAddr("192.0.2.3"), spand.ClassBulk)
	if err != nil || got != want || !got.Known() {
		t.Fatalf("with Redis gone: %+v %v\nwant %+v", got, err, want)
	}
	if p, _ := s3.Predict(ctx, netip.MustParseAddr("192.0.2.1"), spand.ClassBulk); p.Source != "prefix" {
		t.Fatalf("never-read host with Redis gone: %+v, want the prefix read before", p)
	}
}

// TestRedisDown: with Redis gone, reports are accepted and answered from
// memory, and written once Redis is back.
func TestRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	s1 := newStoreRetry(t, rs.Addr(), clk, time.Second) // long enough to see it marked down
	ctx := context.Background()
	rs.Stop()

	r := report("10.0.0.1", "192.0.2.9", spand.ClassWeb, clk.Now(), 7777)
	if err := s1.Add(ctx, []spand.Report{r}); err != nil {
		t.Fatalf("Add with Redis down: %v", err)
	}
	p, err := s1.Predict(ctx, r.Remote, spand.ClassWeb)
	if err != nil || p.Source != "host" || p.Throughput != 7777 {
		t.Fatalf("prediction with Redis down: %+v %v", p, err)
	}
	// Redis is now marked down: reads go straight to memory.
	if !s1.redisDown() {
		t.Fatal("a failed read did not mark Redis down")
	}
	if p, _ := s1.Predict(ctx, r.Remote, spand.ClassWeb); p.Throughput != 7777 {
		t.Fatalf("second prediction with Redis down: %+v", p)
	}
	if es, _ := s1.Entries(ctx, 0); len(es) != 3 {
		t.Fatalf("entries with Redis down: %d, want 3 from memory", len(es))
	}
	if err := s1.Flush(ctx); err == nil {
		t.Fatal("Flush with Redis down reported success")
	}
	if n := s1.Pending(); n != 1 {
		t.Fatalf("%d reports queued, want 1", n)
	}

	rs.Restart() // same port, empty database
	// The background writer retries every 50 ms; wait for the queue to
	// drain, with a deadline.
	testenv.Poll(t, 10*time.Second, "the queue written after Redis came back", func() bool { return s1.Pending() == 0 })
	if s1.redisDown() {
		t.Fatal("Redis still marked down after the queue was written")
	}
	s2 := newStore(t, rs.Addr(), clk)
	p, err = s2.Predict(ctx, r.Remote, spand.ClassWeb)
	if err != nil || p.Source != "host" || p.Throughput != 7777 || p.Reports != 1 {
		t.Fatalf("second instance after recovery: %+v %v", p, err)
	}
}

func TestQueueBounded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	// Nothing listens on a fresh free port: Redis is down from the start.
	s, err := New(Options{Addr: "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), MaxPending: 5, Logger: slog.New(slog.DiscardHandler), RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(clk.Now)
	defer s.Close()
	for i := range 8 {
		s.Add(context.Background(), []spand.Report{report("10.0.0.1", "192.0.2.9", spand.ClassWeb, clk.Now(), float64(i+1))})
	}
	if n := s.Pending(); n != 5 {
		t.Fatalf("queue holds %d, MaxPending 5", n)
	}
	var b strings.Builder
	s.Metrics(&b)
	if !strings.Contains(b.String(), "spand_redis_dropped_total 3") {
		t.Fatalf("metrics:\n%s", b.String())
	}
}

// BenchmarkPredictRedis: a prediction from the shared store (three
// pipelined LRANGEs of up to 32 samples, one round trip to a loopback
// redis-server). BenchmarkRedisPing, the bare round trip, is its floor in
// the same run.
func BenchmarkPredictRedis(b *testing.B) {
	rs := redistest.Start(b)
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	s := newStore(b, rs.Addr(), clk)
	ctx := context.Background()
	var reports []spand.Report
	for i := range 32 {
		reports = append(reports, report("10.0.0.1", "192.0.2.9", spand.ClassWeb, clk.Now(), float64(1000+i)))
	}
	s.Add(ctx, reports)
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	addr := netip.MustParseAddr("192.0.2.9")
	b.ReportAllocs()
	for b.Loop() {
		if p, _ := s.Predict(ctx, addr, spand.ClassWeb); p.Source != "host" || p.Reports != 32 {
			b.Fatalf("%+v", p)
		}
	}
}

func BenchmarkRedisPing(b *testing.B) {
	rs := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), DisableIdentity: true})
	defer c.Close()
	ctx := context.Background()
	for b.Loop() {
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSampleEncoding(t *testing.T) {
	s := spand.Sample{T: 1763726400123456789, Throughput: 1.5e6, RTTMin: 20.5, RTTMedian: 31, Loss: 0.02, ResponseTime: 80, ResponseRate: 2.5e6}
	got := decodeSamples([]string{string(encodeSample(s)), "short", `{"t":1}`})
	if len(got) != 1 || got[0] != s {
		t.Fatalf("decode(encode(%+v)) = %+v", s, got)
	}
}

// TestAckAfterOverflow: reports dropped from the head by overflow while a
// batch was being written must not make the flush drop unwritten ones.
func TestAckAfterOverflow(t *testing.T) {
	s := &Store{}
	for i := range 10 {
		s.pending = append(s.pending, spand.Report{Bytes: int64(i)})
	}
	first := s.headSeq // a batch of reports 0..4 is being written
	s.popLocked(3)     // meanwhile overflow drops 0..2
	s.ackLocked(first, 5)
	if len(s.pending) != 5 || s.pending[0].Bytes != 5 {
		t.Fatalf("queue after ack: %d reports from #%d, want 5 from #5", len(s.pending), s.pending[0].Bytes)
	}
	s.popLocked(8) // overflow beyond the whole batch
	s.ackLocked(5, 3)
	if len(s.pending) != 0 || s.headSeq != 10 {
		t.Fatalf("queue %d, head %d", len(s.pending), s.headSeq)
	}
}
