package spand

import (
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the aggregator, server and client.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rep builds a valid report ending at end.
func rep(local, remote string, class Class, end time.Time, thr float64) Report {
	return Report{
		Local: netip.MustParseAddr(local), Remote: netip.MustParseAddr(remote), Class: class,
		Start: end.Add(-2 * time.Second), Duration: 2,
		Bytes: int64(thr * 2), Throughput: thr,
		RTTMin: 20, RTTMedian: 25, Loss: 0.01,
	}
}

func newTestAggregator(cfg Config) (*Aggregator, *fakeClock) {
	clk := newFakeClock()
	a := NewAggregator(cfg)
	a.SetClock(clk.Now)
	return a, clk
}

func TestAggregatorFallback(t *testing.T) {
	a, clk := newTestAggregator(Config{})
	a.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 100_000))

	tests := []struct {
		addr, class string
		source, key string
	}{
		{"192.0.2.10", "web", "host", "192.0.2.10"},
		{"192.0.2.99", "web", "prefix", "192.0.2.0/24"},
		{"::ffff:192.0.2.10", "web", "host", "192.0.2.10"}, // mapped form finds the same host
		{"10.0.0.5", "web", "local", "10.0.0.5"},
		{"192.0.2.10", "bulk", "none", ""}, // other class
		{"198.51.100.1", "web", "none", ""},
	}
	for _, tt := range tests {
		p := a.Predict(netip.MustParseAddr(tt.addr), Class(tt.class))
		if p.Source != tt.source || p.Key != tt.key {
			t.Errorf("Predict(%s, %s) = source %q key %q, want %q %q", tt.addr, tt.class, p.Source, p.Key, tt.source, tt.key)
		}
		if p.Known() && (p.Throughput != 100_000 || p.Reports != 1 || p.RTT != 25 || p.RTTMin != 20) {
			t.Errorf("Predict(%s) = %+v, want throughput 100000 from 1 report, rtt 25/20", tt.addr, p)
		}
		if !p.Known() && (p.Reports != 0 || p.Throughput != 0) {
			t.Errorf("Predict(%s) unknown but carries figures: %+v", tt.addr, p)
		}
	}
}

func TestAggregatorIPv6Prefix(t *testing.T) {
	a, clk := newTestAggregator(Config{})
	a.Add(rep("fd00::1", "2001:db8:1:2::10", ClassBulk, clk.Now(), 5e6))
	p := a.Predict(netip.MustParseAddr("2001:db8:1:2:ffff::1"), ClassBulk)
	if p.Source != "prefix" || p.Key != "2001:db8:1:2::/64" {
		t.Fatalf("IPv6 neighbour answered by %q %q, want prefix 2001:db8:1:2::/64", p.Source, p.Key)
	}
	if p := a.Predict(netip.MustParseAddr("2001:db8:1:3::10"), ClassBulk); p.Known() {
		t.Fatalf("another /64 answered: %+v", p)
	}
}

func TestAggregatorDecayFavoursRecent(t *testing.T) {
	a, clk := newTestAggregator(Config{HalfLife: time.Minute})
	// Three slow reports an hour old (weight 2^-60 each), then one fast
	// fresh report: the weighted median must follow the fresh one, while a
	// plain median would say "slow".
	for range 3 {
		a.Add(rep("10.0.0.5", "192.0.2.10", ClassBulk, clk.Now(), 1000))
	}
	clk.Advance(time.Hour)
	a.Add(rep("10.0.0.5", "192.0.2.10", ClassBulk, clk.Now(), 9000))
	p := a.Predict(netip.MustParseAddr("192.0.2.10"), ClassBulk)
	if p.Throughput != 9000 || p.Reports != 4 {
		t.Fatalf("prediction %+v, want median 9000 from 4 reports", p)
	}
	if p.Weight < 1 || p.Weight > 1.001 {
		t.Fatalf("weight %v, want ~1 (the old reports have decayed)", p.Weight)
	}
	if p.Age != 0 {
		t.Fatalf("age %v, want 0", p.Age)
	}
	clk.Advance(90 * time.Second)
	if p := a.Predict(netip.MustParseAddr("192.0.2.10"), ClassBulk); p.Age != 90 {
		t.Fatalf("age %v s after 90 s, want 90", p.Age)
	}
}

func TestAggregatorHalfLifeWeights(t *testing.T) {
	a, clk := newTestAggregator(Config{HalfLife: 10 * time.Minute})
	a.Add(rep("10.0.0.5", "192.0.2.10", ClassBulk, clk.Now(), 1000))
	clk.Advance(10 * time.Minute)
	a.Add(rep("10.0.0.5", "192.0.2.10", ClassBulk, clk.Now(), 3000))
	p := a.Predict(netip.MustParseAddr("192.0.2.10"), ClassBulk)
	if math.Abs(p.Weight-1.5) > 1e-9 {
		t.Fatalf("weight %v, want 1 + 0.5 after one half-life", p.Weight)
	}
	// Weighted distribution: 1000 (1/3), 3000 (2/3): median 3000, p25 1000.
	if p.Throughput != 3000 || p.ThroughputP25 != 1000 || p.ThroughputP75 != 3000 {
		t.Fatalf("quantiles %v/%v/%v, want 3000/1000/3000", p.Throughput, p.ThroughputP25, p.ThroughputP75)
	}
}

func TestAggregatorExpiry(t *testing.T) {
	a, clk := newTestAggregator(Config{MaxAge: time.Hour})
	a.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1000))
	clk.Advance(59 * time.Minute)
	if p := a.Predict(netip.MustParseAddr("192.0.2.10"), ClassWeb); !p.Known() {
		t.Fatal("report younger than MaxAge does not answer")
	}
	clk.Advance(2 * time.Minute)
	if p := a.Predict(netip.MustParseAddr("192.0.2.10"), ClassWeb); p.Known() {
		t.Fatalf("stale report still answers: %+v", p)
	}
	if n := a.Expire(); n != 3 {
		t.Fatalf("Expire dropped %d keys, want 3 (host, prefix, local)", n)
	}
	// A report that is already stale when it arrives is counted, not kept.
	a.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now().Add(-2*time.Hour), 1000))
	if st := a.Stats(); st.Stale != 1 || st.Keys[KindHost] != 0 {
		t.Fatalf("stats %+v, want 1 stale report and no host key", st)
	}
}

func TestAggregatorBounds(t *testing.T) {
	a, clk := newTestAggregator(Config{MaxKeys: 3, MaxSamples: 4})
	for i := range 5 {
		a.Add(rep("10.0.0.5", netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String(), ClassWeb, clk.Now(), float64(1000*(i+1))))
		clk.Advance(time.Second)
	}
	st := a.Stats()
	if st.Keys[KindHost] != 3 || st.Evicted[KindHost] != 2 {
		t.Fatalf("host table %d keys, %d evicted; want 3 and 2", st.Keys[KindHost], st.Evicted[KindHost])
	}
	// The two least recently updated hosts went first.
	for i, want := range []bool{false, false, true, true, true} {
		p := a.Predict(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), ClassWeb)
		if (p.Source == "host") != want {
			t.Errorf("host 192.0.2.%d answered by %q, want host=%v", i, p.Source, want)
		}
	}
	// All five went into the same /24 and local key, which keep 4 samples.
	p := a.Predict(netip.MustParseAddr("10.0.0.5"), ClassWeb)
	if p.Reports != 4 {
		t.Fatalf("local key holds %d reports, want MaxSamples=4", p.Reports)
	}
	if p.ThroughputP25 == 1000 {
		t.Fatal("the oldest sample was not overwritten by the ring")
	}
}

func TestWeightedQuantiles(t *testing.T) {
	tests := []struct {
		name string
		in   []wv
		q    float64
		want float64
	}{
		{"single", []wv{{5, 1}}, 0.5, 5},
		{"odd equal", []wv{{3, 1}, {1, 1}, {2, 1}}, 0.5, 2},
		{"heavy top", []wv{{1, 1}, {2, 1}, {9, 10}}, 0.5, 9},
		{"p25", []wv{{4, 1}, {1, 1}, {3, 1}, {2, 1}}, 0.25, 1},
		{"p75", []wv{{4, 1}, {1, 1}, {3, 1}, {2, 1}}, 0.75, 3},
		{"tiny weights", []wv{{1, 1e-300}, {2, 1e-300}}, 0.5, 1},
	}
	for _, tt := range tests {
		if got := weightedQuantiles(append([]wv(nil), tt.in...), tt.q)[0]; got != tt.want {
			t.Errorf("%s: quantile %v = %v, want %v", tt.name, tt.q, got, tt.want)
		}
	}
	// Over 64 values the sort path changes; the answer must not.
	var big []wv
	for i := 200; i > 0; i-- {
		big = append(big, wv{float64(i), 1})
	}
	if got := weightedQuantiles(big, 0.5)[0]; got != 100 {
		t.Errorf("median of 1..200 = %v, want 100", got)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, k := range []Key{
		{KindHost, netip.MustParsePrefix("192.0.2.1/32"), ClassWeb},
		{KindPrefix, netip.MustParsePrefix("2001:db8::/64"), ClassBulk},
		{KindLocal, netip.MustParsePrefix("fd00::1/128"), ClassRealtime},
	} {
		got, err := ParseKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKey(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	for _, bad := range []string{"", "host|1.2.3.4/32", "none|1.2.3.4/32|web", "host|x|web", "host|1.2.3.4/32|ftp"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestConcurrentAddPredict(t *testing.T) {
	a, clk := newTestAggregator(Config{MaxKeys: 50})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				a.Add(rep("10.0.0.5", netip.AddrFrom4([4]byte{192, 0, byte(g), byte(i)}).String(), ClassWeb, clk.Now(), 1000))
				a.Predict(netip.AddrFrom4([4]byte{192, 0, byte(g), byte(i / 2)}), ClassWeb)
			}
		}()
	}
	wg.Wait()
	if st := a.Stats(); st.Keys[KindHost] != 50 || st.Reports != 2000 {
		t.Fatalf("stats %+v, want 50 host keys and 2000 reports", st)
	}
}

// FuzzParseKey: keys come back from Redis and snapshot files, which other
// nodes and versions write.
func FuzzParseKey(f *testing.F) {
	f.Add("host|192.0.2.1/32|web")
	f.Add("prefix|2001:db8::/64|bulk")
	f.Add("local|::ffff:10.0.0.1/128|interactive")
	f.Add("host||web|")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if !k.Class.Valid() || k.Kind == KindNone || !k.Prefix.IsValid() {
			t.Fatalf("ParseKey(%q) accepted %+v", s, k)
		}
		k2, err := ParseKey(k.String())
		if err != nil || k2 != k {
			t.Fatalf("round trip of %q: %+v, %v", s, k2, err)
		}
	})
}

func TestEntriesManyKeys(t *testing.T) {
	a, clk := newTestAggregator(Config{})
	for i := range 600 { // more than entriesChunk
		a.Add(rep("10.0.0.5", netip.AddrFrom4([4]byte{192, 0, byte(i / 256), byte(i)}).String(), ClassWeb, clk.Now(), float64(i+1)))
	}
	es := a.Entries(0)
	// 600 hosts, 1 local host (its ring keeps the newest 32), 3 /24 prefixes.
	if len(es) != 604 || es[0].Source != "host" || es[600].Source != "local" || es[600].Reports != DefaultMaxSamples || es[603].Source != "prefix" {
		t.Fatalf("%d entries; first %+v", len(es), es[0])
	}
	if top := a.Entries(5); len(top) != 5 {
		t.Fatalf("Entries(5) returned %d", len(top))
	}
}

func TestReplaceSamples(t *testing.T) {
	a, clk := newTestAggregator(Config{MaxSamples: 3})
	k := Key{KindHost, netip.MustParsePrefix("192.0.2.1/32"), ClassBulk}
	a.Add(rep("10.0.0.5", "192.0.2.1", ClassBulk, clk.Now(), 99)) // replaced below
	var in []Sample
	for i := range 5 { // oldest first; only the newest 3 are kept
		in = append(in, Sample{T: clk.Now().Add(time.Duration(i-5) * time.Second).UnixNano(), Throughput: float32(1000 * (i + 1))})
	}
	a.ReplaceSamples(k, in)
	p := a.Predict(netip.MustParseAddr("192.0.2.1"), ClassBulk)
	if p.Source != "host" || p.Reports != 3 || p.ThroughputP25 != 3000 || p.Age != 1 {
		t.Fatalf("after replace: %+v, want 3 reports 3000..5000, newest 1 s old", p)
	}
	// The ring then overwrites the oldest (3000) first.
	a.Add(rep("10.0.0.5", "192.0.2.1", ClassBulk, clk.Now(), 6000))
	if p := a.Predict(netip.MustParseAddr("192.0.2.1"), ClassBulk); p.ThroughputP25 != 4000 || p.Reports != 3 {
		t.Fatalf("after one more report: %+v, want 4000..6000", p)
	}
}

// TestAggregatorProxyClients: reports made through a proxy (local: the
// client, remote: the proxy's LAN address 10.0.0.1) from a slow client A
// (10.0.1.7) and a fast client B (10.0.2.9). A LAN client with no reports
// of its own must not be answered from the proxy's remote prefix (the mix
// of A and B) once Config.Local says which addresses are clients: it gets
// "none", or with LocalPrefixes its own /24's figure. Remote servers keep
// their prefix fallback.
func TestAggregatorProxyClients(t *testing.T) {
	const slow, fast, server = 20_000, 2_000_000, 500_000
	local := LocalPrefixes()
	tests := []struct {
		name         string
		cfg          Config
		addr         string
		source, key  string
		throughput   float64
		localPrefixN int // keys in the local prefix table
	}{
		{"no Local: old fallback to the proxy's /24", Config{}, "10.0.0.9", "prefix", "10.0.0.0/24", slow, 0},
		{"client's own reports", Config{Local: local}, "10.0.1.7", "local", "10.0.1.7", slow, 0},
		{"newcomer in the proxy's /24", Config{Local: local}, "10.0.0.9", "none", "", 0, 0},
		{"newcomer in another /24", Config{Local: local}, "10.0.3.4", "none", "", 0, 0},
		{"newcomer in A's /24, no local prefixes", Config{Local: local}, "10.0.1.8", "none", "", 0, 0},
		{"remote server's prefix", Config{Local: local}, "198.51.100.99", "prefix", "198.51.100.0/24", server, 0},
		{"newcomer in A's /24", Config{Local: local, LocalPrefixes: true}, "10.0.1.8", "localprefix", "10.0.1.0/24", slow, 3},
		{"newcomer in B's /24", Config{Local: local, LocalPrefixes: true}, "10.0.2.1", "localprefix", "10.0.2.0/24", fast, 3},
		{"newcomer in the proxy's /24, local prefixes", Config{Local: local, LocalPrefixes: true}, "10.0.0.9", "none", "", 0, 3},
		{"newcomer in another /24, local prefixes", Config{Local: local, LocalPrefixes: true}, "10.0.3.4", "none", "", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, clk := newTestAggregator(tt.cfg)
			for range 3 {
				a.Add(rep("10.0.1.7", "10.0.0.1", ClassWeb, clk.Now(), slow),
					rep("10.0.1.7", "10.0.0.1", ClassWeb, clk.Now(), slow))
				a.Add(rep("10.0.2.9", "10.0.0.1", ClassWeb, clk.Now(), fast))
				clk.Advance(time.Minute)
			}
			a.Add(rep("10.0.5.5", "198.51.100.7", ClassWeb, clk.Now(), server))
			p := a.Predict(netip.MustParseAddr(tt.addr), ClassWeb)
			if p.Source != tt.source || p.Key != tt.key || p.Throughput != tt.throughput {
				t.Errorf("Predict(%s) = source %s key %q throughput %v; want %s %q %v", tt.addr, p.Source, p.Key, p.Throughput, tt.source, tt.key, tt.throughput)
			}
			if n := a.Stats().Keys[KindLocalPrefix]; n != tt.localPrefixN {
				t.Errorf("%d local prefix keys, want %d", n, tt.localPrefixN)
			}
		})
	}
}
