package spand

import (
	"container/list"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultHalfLife     = 30 * time.Minute
	DefaultMaxAge       = 24 * time.Hour
	DefaultMaxKeys      = 10000 // per table (host, local, prefix, localprefix)
	DefaultMaxSamples   = 32    // per key
	DefaultPrefixV4Bits = 24
	DefaultPrefixV6Bits = 64
	DefaultMinReports   = 1

	// MaxSamplesLimit caps Config.MaxSamples: estimates sort the samples of
	// one key on every prediction.
	MaxSamplesLimit = 1024
)

// Config sets the aggregation's time behaviour and memory bounds. The zero
// value is a valid configuration: every zero field means its Default.
type Config struct {
	// HalfLife is the age at which a report weighs half as much as a fresh
	// one (exponential decay).
	HalfLife time.Duration
	// MaxAge is the age past which a report is dropped; a key whose newest
	// report is that old expires.
	MaxAge time.Duration
	// MaxKeys bounds each of the four tables (by remote host, by local
	// host, by remote prefix, by local prefix); the least recently
	// updated key is evicted.
	MaxKeys int
	// MaxSamples bounds the reports kept per key (a ring: the oldest
	// received goes first). At most MaxSamplesLimit.
	MaxSamples int
	// PrefixV4Bits and PrefixV6Bits are the lengths of the prefixes the
	// prefix tables (remote and local) aggregate by (/24 and /64).
	PrefixV4Bits, PrefixV6Bits int
	// MinReports is the number of live reports a key needs to answer.
	MinReports int
	// Local tells which addresses are LAN clients for predictions (nil:
	// none, as before it existed; spand's server sets it from -local). A
	// prediction for a LAN client never falls back to the remote prefix
	// table: behind a proxy the remote side of every client's reports is
	// the proxy's address, and its /24 would give a client with no
	// reports of its own the figure of all the others.
	Local LocalFunc
	// LocalPrefixes also aggregates reports by local /24 or /64 (a fourth
	// table), and answers a LAN client with no reports of its own from
	// its neighbourhood (a slow Wi-Fi subnet) instead of not at all. Off
	// by default: when every client shares one LAN /24, that prefix mixes
	// the fast and the slow.
	LocalPrefixes bool
}

// WithDefaults returns c with every zero field set to its default and the
// others clamped to their valid ranges.
func (c Config) WithDefaults() Config {
	if c.HalfLife <= 0 {
		c.HalfLife = DefaultHalfLife
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = DefaultMaxSamples
	}
	c.MaxSamples = min(c.MaxSamples, MaxSamplesLimit)
	if c.PrefixV4Bits <= 0 || c.PrefixV4Bits > 32 {
		c.PrefixV4Bits = DefaultPrefixV4Bits
	}
	if c.PrefixV6Bits <= 0 || c.PrefixV6Bits > 128 {
		c.PrefixV6Bits = DefaultPrefixV6Bits
	}
	if c.MinReports <= 0 {
		c.MinReports = DefaultMinReports
	}
	return c
}

// Kind names the table a key belongs to, which is also the "source" of a
// prediction.
type Kind uint8

// The tables, in the order a prediction consults them.
const (
	KindNone   Kind = iota // no key answered
	KindHost               // (remote host, class)
	KindLocal              // (local host, class): the client's last mile
	KindPrefix             // (remote /24 or /64, class)
	// KindLocalPrefix is (local /24 or /64, class): a LAN client's
	// neighbourhood (a slow Wi-Fi subnet), the last resort for a client
	// with no reports of its own.
	KindLocalPrefix
	numKinds
)

var kindNames = [...]string{"none", "host", "local", "prefix", "localprefix"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return KindNone, fmt.Errorf("spand: unknown key kind %q", s)
}

// Key identifies one aggregate: a host (a full-length prefix) or a remote
// prefix, and a class.
type Key struct {
	Kind   Kind
	Prefix netip.Prefix
	Class  Class
}

func (k Key) String() string {
	return k.Kind.String() + "|" + k.Prefix.String() + "|" + string(k.Class)
}

// ParseKey is the inverse of Key.String.
func ParseKey(s string) (Key, error) {
	parts := strings.SplitN(s, "|", 3)
	if len(parts) != 3 {
		return Key{}, fmt.Errorf("spand: bad key %q", s)
	}
	kind, err := ParseKind(parts[0])
	if err != nil || kind == KindNone {
		return Key{}, fmt.Errorf("spand: bad key %q: kind", s)
	}
	p, err := netip.ParsePrefix(parts[1])
	if err != nil {
		return Key{}, fmt.Errorf("spand: bad key %q: %w", s, err)
	}
	c, err := ParseClass(parts[2])
	if err != nil {
		return Key{}, fmt.Errorf("spand: bad key %q: %w", s, err)
	}
	return Key{kind, p, c}, nil
}

func hostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// prefix is a's /24 or /64 (PrefixV4Bits, PrefixV6Bits).
func (c Config) prefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := c.PrefixV6Bits
	if a.Is4() {
		bits = c.PrefixV4Bits
	}
	p, _ := a.Prefix(bits)
	return p
}

// Keys returns the keys a report updates: remote host, local host,
// remote prefix, and local prefix when LocalPrefixes is set (else the
// zero Key, of KindNone, which callers skip), each with the report's
// class.
func (c Config) Keys(r *Report) [4]Key {
	ks := [4]Key{
		{KindHost, hostPrefix(r.Remote), r.Class},
		{KindLocal, hostPrefix(r.Local), r.Class},
		{KindPrefix, c.prefix(r.Remote), r.Class},
	}
	if c.LocalPrefixes {
		ks[3] = Key{KindLocalPrefix, c.prefix(r.Local), r.Class}
	}
	return ks
}

// LookupKeys returns the keys a prediction for addr consults, in order:
// the remote host, the local host, then the remote prefix; for a LAN
// client (Config.Local) the last is its local prefix when LocalPrefixes
// is set, else the zero Key (KindNone, which callers skip). A LAN client
// never gets the remote prefix table's answer: that table holds the
// remote sides of reports, and when the remote side is a proxy every
// client shares, its /24 mixes them all.
func (c Config) LookupKeys(addr netip.Addr, class Class) [3]Key {
	last := Key{KindPrefix, c.prefix(addr), class}
	if c.Local != nil && c.Local(addr.Unmap()) {
		last = Key{}
		if c.LocalPrefixes {
			last = Key{KindLocalPrefix, c.prefix(addr), class}
		}
	}
	return [3]Key{
		{KindHost, hostPrefix(addr), class},
		{KindLocal, hostPrefix(addr), class},
		last,
	}
}

// Sample is what the aggregation keeps of one report: its end time and its
// figures, in float32 to keep a key small.
type Sample struct {
	T            int64   `json:"t"` // end of the report, Unix nanoseconds
	Throughput   float32 `json:"thr"`
	RTTMin       float32 `json:"rmin,omitempty"`
	RTTMedian    float32 `json:"rmed,omitempty"`
	Loss         float32 `json:"loss,omitempty"`
	ResponseTime float32 `json:"rt,omitempty"`
	ResponseRate float32 `json:"rr,omitempty"`
}

// SampleOf condenses a report.
func SampleOf(r *Report) Sample {
	return Sample{
		T:            r.End().UnixNano(),
		Throughput:   float32(r.Throughput),
		RTTMin:       float32(r.RTTMin),
		RTTMedian:    float32(r.RTTMedian),
		Loss:         float32(r.Loss),
		ResponseTime: float32(r.ResponseTime),
		ResponseRate: float32(r.ResponseRate),
	}
}

// SampleFor is the sample key k keeps of r: SampleOf, except that the
// local tables (KindLocal, KindLocalPrefix) keep r's HostRate, when it has
// one, as the throughput. A LAN client's bandwidth is what it gets over
// all its connections while data flows; one of six parallel connections,
// idle between requests, would show a fraction of it.
func SampleFor(k Key, r *Report) Sample {
	s := SampleOf(r)
	if (k.Kind == KindLocal || k.Kind == KindLocalPrefix) && r.HostRate > 0 {
		s.Throughput = float32(r.HostRate)
	}
	return s
}

// Prediction is the answer to "how fast is addr for class?". Source says
// which key answered; when it is "none" the figures are zero.
type Prediction struct {
	Addr   netip.Addr `json:"addr,omitzero"`
	Class  Class      `json:"class"`
	Source string     `json:"source"`        // host, local, prefix or none
	Key    string     `json:"key,omitempty"` // the host or prefix that answered

	Throughput    float64 `json:"throughput"`     // bytes/s, decay-weighted median
	ThroughputP25 float64 `json:"throughput_p25"` // bytes/s, weighted 25th percentile
	ThroughputP75 float64 `json:"throughput_p75"` // bytes/s, weighted 75th percentile
	RTT           float64 `json:"rtt_ms"`         // weighted median of the reports' RTT
	RTTMin        float64 `json:"rtt_min_ms"`     // lowest RTT seen in live reports
	Loss          float64 `json:"loss"`           // weighted mean loss fraction
	ResponseTime  float64 `json:"response_time_ms,omitempty"`
	ResponseRate  float64 `json:"response_rate,omitempty"`

	Reports int     `json:"reports"` // live reports behind the answer
	Weight  float64 `json:"weight"`  // their summed decay weights (effective count)
	Age     float64 `json:"age_s"`   // seconds since the newest of them
}

// Known reports whether some key answered.
func (p *Prediction) Known() bool { return p.Source != "" && p.Source != KindNone.String() }

type wv struct{ v, w float64 }

// weightedQuantiles sorts xs by value and returns the values at the
// quantiles qs (the smallest value whose cumulative weight reaches q of the
// total). xs must be non-empty.
func weightedQuantiles(xs []wv, qs ...float64) [3]float64 {
	if len(xs) <= 64 {
		for i := 1; i < len(xs); i++ { // insertion sort: small, no allocation
			for j := i; j > 0 && xs[j].v < xs[j-1].v; j-- {
				xs[j], xs[j-1] = xs[j-1], xs[j]
			}
		}
	} else {
		slices.SortFunc(xs, func(a, b wv) int {
			switch {
			case a.v < b.v:
				return -1
			case a.v > b.v:
				return 1
			}
			return 0
		})
	}
	total := 0.0
	for _, x := range xs {
		total += x.w
	}
	var out [3]float64
	for qi, q := range qs {
		target := q * total
		cum := 0.0
		out[qi] = xs[len(xs)-1].v
		for _, x := range xs {
			cum += x.w
			if cum >= target {
				out[qi] = x.v
				break
			}
		}
	}
	return out
}

// Estimate turns the samples of key into a prediction at time now: samples
// older than MaxAge are ignored, the others weigh 2^(-age/HalfLife). ok is
// false when fewer than MinReports samples are live.
func (c Config) Estimate(key Key, samples []Sample, now time.Time) (p Prediction, ok bool) {
	var stack [3][64]wv
	thr, rtt, rr := stack[0][:0], stack[1][:0], stack[2][:0]
	nowNs := now.UnixNano()
	maxAge := int64(c.MaxAge)
	hl := float64(c.HalfLife)
	newest := int64(math.MinInt64)
	var total, loss, rtSum, rtW float64
	rttMin := math.Inf(1)
	for i := range samples {
		s := &samples[i]
		age := nowNs - s.T
		if age > maxAge {
			continue
		}
		age = max(age, 0) // reports from a clock slightly ahead count as fresh
		w := math.Exp2(-float64(age) / hl)
		if w < 1e-300 {
			w = 1e-300 // never zero: a lone old report still answers
		}
		p.Reports++
		total += w
		newest = max(newest, s.T)
		thr = append(thr, wv{float64(s.Throughput), w})
		loss += w * float64(s.Loss)
		if r := s.RTTMedian; r > 0 {
			rtt = append(rtt, wv{float64(r), w})
		} else if s.RTTMin > 0 {
			rtt = append(rtt, wv{float64(s.RTTMin), w})
		}
		if s.RTTMin > 0 {
			rttMin = min(rttMin, float64(s.RTTMin))
		}
		if s.ResponseTime > 0 {
			rtSum += w * float64(s.ResponseTime)
			rtW += w
		}
		if s.ResponseRate > 0 {
			rr = append(rr, wv{float64(s.ResponseRate), w})
		}
	}
	if p.Reports < c.MinReports || p.Reports == 0 {
		return Prediction{}, false
	}
	p.Class = key.Class
	p.Source = key.Kind.String()
	if key.Prefix.IsSingleIP() {
		p.Key = key.Prefix.Addr().String()
	} else {
		p.Key = key.Prefix.String()
	}
	q := weightedQuantiles(thr, 0.5, 0.25, 0.75)
	p.Throughput, p.ThroughputP25, p.ThroughputP75 = q[0], q[1], q[2]
	if len(rtt) > 0 {
		p.RTT = weightedQuantiles(rtt, 0.5)[0]
		p.RTTMin = rttMin
	}
	if len(rr) > 0 {
		p.ResponseRate = weightedQuantiles(rr, 0.5)[0]
	}
	if rtW > 0 {
		p.ResponseTime = rtSum / rtW
	}
	p.Loss = loss / total
	p.Weight = total
	p.Age = max(0, float64(nowNs-newest)/1e9)
	return p, true
}

// Aggregator keeps reports in four bounded tables (remote host, local
// host, remote prefix, local prefix) and answers predictions from them. It is safe for
// concurrent use. Create it with NewAggregator.
type Aggregator struct {
	cfg Config

	mu     sync.RWMutex
	tables [numKinds]table
	added  uint64
	stale  uint64

	// Testing.
	now func() time.Time
}

type table struct {
	m       map[Key]*entry
	lru     list.List // front = most recently updated
	evicted uint64
	expired uint64
}

type entry struct {
	key     Key
	samples []Sample // ring of at most MaxSamples
	next    int      // where the next sample goes once the ring is full
	newest  int64
	elem    *list.Element
}

// NewAggregator returns an empty aggregator with cfg (zero fields take
// their defaults).
func NewAggregator(cfg Config) *Aggregator {
	a := &Aggregator{cfg: cfg.WithDefaults(), now: time.Now}
	for i := range a.tables {
		a.tables[i].m = make(map[Key]*entry)
	}
	return a
}

// Config returns the aggregator's effective configuration.
func (a *Aggregator) Config() Config { return a.cfg }

// SetClock replaces the aggregator's clock (for replays and tests).
func (a *Aggregator) SetClock(now func() time.Time) { a.now = now }

// Now returns the aggregator's current time.
func (a *Aggregator) Now() time.Time { return a.now() }

// Add aggregates reports, which the caller has validated. Reports already
// older than MaxAge are counted as stale and dropped.
func (a *Aggregator) Add(reports ...Report) {
	now := a.now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range reports {
		r := &reports[i]
		if now-r.End().UnixNano() > int64(a.cfg.MaxAge) {
			a.stale++
			continue
		}
		a.added++
		for _, k := range a.cfg.Keys(r) {
			if k.Kind == KindNone {
				continue
			}
			a.addSampleLocked(k, SampleFor(k, r), now)
		}
	}
}

// AddSamples adds raw samples to one key (used when loading a snapshot or
// copying from a shared store).
func (a *Aggregator) AddSamples(k Key, samples ...Sample) {
	now := a.now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range samples {
		if now-s.T <= int64(a.cfg.MaxAge) {
			a.addSampleLocked(k, s, now)
		}
	}
}

func (a *Aggregator) addSampleLocked(k Key, s Sample, now int64) {
	e := a.entryLocked(k, now)
	if len(e.samples) < a.cfg.MaxSamples {
		e.samples = append(e.samples, s)
	} else {
		e.samples[e.next] = s
		e.next = (e.next + 1) % len(e.samples)
	}
	e.newest = max(e.newest, s.T)
}

// entryLocked returns k's entry, marked most recently updated, creating it
// (after expiring or evicting from the cold end) when it is new.
func (a *Aggregator) entryLocked(k Key, now int64) *entry {
	t := &a.tables[k.Kind]
	if e := t.m[k]; e != nil {
		t.lru.MoveToFront(e.elem)
		return e
	}
	// Expire stale keys from the cold end first, then evict by LRU.
	for range 2 {
		back := t.lru.Back()
		if back == nil {
			break
		}
		old := back.Value.(*entry)
		if now-old.newest <= int64(a.cfg.MaxAge) {
			break
		}
		t.remove(old)
		t.expired++
	}
	if len(t.m) >= a.cfg.MaxKeys {
		t.remove(t.lru.Back().Value.(*entry))
		t.evicted++
	}
	e := &entry{key: k, newest: math.MinInt64}
	e.elem = t.lru.PushFront(e)
	t.m[k] = e
	return e
}

// ReplaceSamples sets k's samples to the newest MaxSamples of samples
// (given oldest first), dropping what k held. A shared store uses it to
// keep a local copy of what it last read, to answer from while the shared
// store is unreachable.
func (a *Aggregator) ReplaceSamples(k Key, samples []Sample) {
	if len(samples) == 0 {
		return
	}
	samples = samples[max(0, len(samples)-a.cfg.MaxSamples):]
	now := a.now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entryLocked(k, now)
	e.samples = append(e.samples[:0], samples...)
	e.next = 0 // the oldest goes first once the ring is full
	e.newest = math.MinInt64
	for _, s := range samples {
		e.newest = max(e.newest, s.T)
	}
}

func (t *table) remove(e *entry) {
	t.lru.Remove(e.elem)
	delete(t.m, e.key)
}

// Predict answers for addr and class from the keys of LookupKeys in
// order: the host table, the local table, then the remote prefix table,
// or for a LAN client (Config.Local) the local prefix table if
// LocalPrefixes is set; Source "none" when none has live reports.
func (a *Aggregator) Predict(addr netip.Addr, class Class) Prediction {
	now := a.now()
	keys := a.cfg.LookupKeys(addr, class)
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, k := range keys {
		if k.Kind == KindNone {
			continue
		}
		if e := a.tables[k.Kind].m[k]; e != nil {
			if p, ok := a.cfg.Estimate(k, e.samples, now); ok {
				p.Addr = addr
				return p
			}
		}
	}
	return Prediction{Addr: addr, Class: class, Source: KindNone.String()}
}

// Entries returns an estimate for every key with live reports, most
// reported first within each kind, at most limit of them (0 = all).
//
// It takes the read lock in short stretches (entriesChunk keys at a time),
// so that a dashboard listing tens of thousands of keys never holds up
// Add, nor the predictions queued behind a waiting Add, for long.
func (a *Aggregator) Entries(limit int) []Prediction {
	now := a.now()
	a.mu.RLock()
	var keys []Key
	for kind := KindHost; kind < numKinds; kind++ {
		for k := range a.tables[kind].m {
			keys = append(keys, k)
		}
	}
	a.mu.RUnlock()
	var out []Prediction
	for len(keys) > 0 {
		chunk := keys[:min(entriesChunk, len(keys))]
		keys = keys[len(chunk):]
		a.mu.RLock()
		for _, k := range chunk {
			if e := a.tables[k.Kind].m[k]; e != nil {
				if p, ok := a.cfg.Estimate(k, e.samples, now); ok {
					out = append(out, p)
				}
			}
		}
		a.mu.RUnlock()
	}
	SortEntries(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// entriesChunk is how many keys Entries estimates per read lock.
const entriesChunk = 256

// SortEntries orders predictions by source, then most reports first, then
// key, which is the order /v1/hosts lists them in.
func SortEntries(ps []Prediction) {
	rank := func(s string) int {
		k, _ := ParseKind(s)
		return int(k)
	}
	sort.Slice(ps, func(i, j int) bool {
		a, b := &ps[i], &ps[j]
		if ra, rb := rank(a.Source), rank(b.Source); ra != rb {
			return ra < rb
		}
		if a.Reports != b.Reports {
			return a.Reports > b.Reports
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Class < b.Class
	})
}

// Expire drops every key whose newest report is older than MaxAge and
// returns how many it dropped.
func (a *Aggregator) Expire() int {
	now := a.now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for i := range a.tables {
		t := &a.tables[i]
		for _, e := range t.m {
			if now-e.newest > int64(a.cfg.MaxAge) {
				t.remove(e)
				t.expired++
				n++
			}
		}
	}
	return n
}

// AggregatorStats are the aggregator's counters, for /metrics.
type AggregatorStats struct {
	Reports uint64           // reports aggregated
	Stale   uint64           // reports dropped as older than MaxAge
	Keys    [numKinds]int    // live keys per table
	Evicted [numKinds]uint64 // keys evicted by the MaxKeys bound
	Expired [numKinds]uint64 // keys expired by MaxAge
	Samples int              // samples held in all tables
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() AggregatorStats {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := AggregatorStats{Reports: a.added, Stale: a.stale}
	for i := range a.tables {
		t := &a.tables[i]
		st.Keys[i] = len(t.m)
		st.Evicted[i] = t.evicted
		st.Expired[i] = t.expired
		for _, e := range t.m {
			st.Samples += len(e.samples)
		}
	}
	return st
}

// forEach calls f for every key and its samples under the read lock.
func (a *Aggregator) forEach(f func(Key, []Sample)) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for i := range a.tables {
		for k, e := range a.tables[i].m {
			f(k, e.samples)
		}
	}
}
