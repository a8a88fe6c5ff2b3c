package track

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns    = 1 << 16          // table entries (TCP connections and UDP flows)
	DefaultIdleTimeout = 4 * time.Minute  // tcptrace's same-endpoints reuse interval
	DefaultSYNTimeout  = 10 * time.Second // tstat's singleton timeout: only SYNs seen
	DefaultCloseLinger = 5 * time.Second  // kept after FIN/FIN or RST to absorb the last ACKs
	DefaultUDPTimeout  = time.Minute      // idle UDP flow
	DefaultPeriodic    = time.Minute      // interim record interval for long connections
)

// scanEvery is how much capture time passes between two timeout scans of
// the connection table; lruGranularity is the precision of the LRU order.
const (
	scanEvery      = int64(time.Second)
	lruGranularity = int64(time.Second)
)

// Config configures a Tracker. The zero value is valid: every zero field
// means the corresponding Default constant.
type Config struct {
	// OnConn receives every connection record: when a connection closes,
	// times out, is evicted or flushed, and periodically (Final false)
	// while it lasts. The *Conn is only valid during the call.
	OnConn func(*Conn)

	MaxConns    int           // connection table size; the least recently used entry is evicted beyond it
	IdleTimeout time.Duration // an established connection with no packet for this long ends
	SYNTimeout  time.Duration // a connection that never got past its SYN ends after this
	CloseLinger time.Duration // after FIN both ways or RST the record waits this long for stragglers
	UDPTimeout  time.Duration // idle UDP flow timeout
	// Periodic is the interval of interim records for long connections;
	// negative disables them.
	Periodic time.Duration
	// NoUDP leaves UDP out of the table (offline TCP-only reports).
	NoUDP bool
	// BusyGap is the longest gap between two data packets of one host
	// (over all its connections) that still counts as busy time for
	// DirStats.SenderRate and ReceiverRate; longer gaps are idle.
	BusyGap time.Duration
}

func (c *Config) setDefaults() {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.SYNTimeout <= 0 {
		c.SYNTimeout = DefaultSYNTimeout
	}
	if c.CloseLinger <= 0 {
		c.CloseLinger = DefaultCloseLinger
	}
	if c.UDPTimeout <= 0 {
		c.UDPTimeout = DefaultUDPTimeout
	}
	if c.Periodic == 0 {
		c.Periodic = DefaultPeriodic
	}
	if c.BusyGap <= 0 {
		c.BusyGap = DefaultBusyGap
	}
}

// Stats are the Tracker's counters.
type Stats struct {
	Packets     uint64 // frames given to the tracker
	TCP, UDP    uint64 // TCP segments and UDP datagrams tracked
	Skipped     uint64 // not IP, not TCP/UDP (ARP, ICMP, MPLS, fragments, ...)
	Malformed   uint64 // headers that did not decode
	Truncated   uint64 // payload cut short by the snap length (counted by the IP length anyway)
	Conns       uint64 // connection records created
	Active      int    // entries in the table now
	Closed      uint64 // ended by FIN/RST
	IdleExpired uint64 // ended by an idle timeout (including SYN-only)
	Evicted     uint64 // dropped because the table was full (LRU)
	Reused      uint64 // ended by a new SYN on the same endpoints
	Flushed     uint64 // ended by Flush
	Periodic    uint64 // interim records delivered
}

// key identifies a connection whatever the direction of the packet: the
// endpoint that sorts first is lo. The addresses are held as big-endian
// 64-bit halves of their 16-byte form, and the struct has no padding, so
// the map hashes and compares it as one 40-byte block of memory.
type key struct {
	lo0, lo1, hi0, hi1 uint64
	ports              uint32 // lo port << 16 | hi port
	proto              uint32
}

// flow is a table entry: the record being built plus the tracking state.
type flow struct {
	key  key
	conn Conn
	aLo  bool // A is the key's lo endpoint

	dir   [2]seqSpace // 0: a->b, 1: b->a
	rtt   [2]samples  // data-to-ACK samples of the data sent in that direction
	tsrtt [2]samples  // TSval/TSecr samples of the TSvals sent in that direction

	first, last  int64 // capture time of the first and last packet, ns
	touch        int64 // tracker clock at the last packet (monotonic)
	listed       int64 // tracker clock when last moved to the LRU list's front
	closedAt     int64 // tracker clock when FIN/FIN or RST was seen, 0 while open
	lastPeriodic int64
	established  bool // a packet went each way

	// request/response
	lastDataDir  int8 // -1 none, 0 a->b, 1 b->a
	lastAData    int64
	inResp       bool
	respFirst    int64
	respLast     int64
	respBytes    int64
	respTotBytes int64
	respTotDur   int64
	respTime     int64

	// busy-time accounting of A (0) and B (1) over all their
	// connections, and where their sent and received meters stood when
	// this flow started (see host.go)
	host     [2]*host
	hostMark [2][2]meterMark

	prev, next *flow // LRU list, most recent first
}

// A Tracker follows connections. It is not safe for concurrent use: feed it
// from one goroutine (the capture loop).
type Tracker struct {
	cfg      Config
	stats    Stats
	table    map[key]*flow
	hosts    map[netip.Addr]*host // busy-time accounting per address (host.go)
	head     *flow                // most recently used
	tail     *flow                // least recently used
	free     []*flow
	nextID   uint64
	clock    int64 // highest capture time seen, ns
	lastScan int64
	minTO    int64
	pkt      Packet
	// recent is a direct-mapped cache of flows by a cheap hash of their
	// key, in front of the map (whose hashing and probing of 40-byte keys
	// was a tenth of the per-packet cost): packets of the connections
	// active now mostly find theirs here. A flow leaves it when it ends.
	recent [recentSize]*flow
}

// New returns a Tracker with cfg (zero fields take their defaults).
func New(cfg Config) *Tracker {
	cfg.setDefaults()
	t := &Tracker{cfg: cfg, table: make(map[key]*flow), hosts: make(map[netip.Addr]*host)}
	t.minTO = int64(min(cfg.CloseLinger, cfg.SYNTimeout, cfg.UDPTimeout, cfg.IdleTimeout))
	return t
}

// Config returns the configuration in use, defaults filled in.
func (t *Tracker) Config() Config { return t.cfg }

// Stats returns the counters.
func (t *Tracker) Stats() Stats {
	s := t.stats
	s.Active = len(t.table)
	return s
}

// Frame decodes one captured frame with dec and tracks it. ts is the
// capture time in Unix nanoseconds. Frames that are not TCP or UDP, or do
// not decode, are counted and skipped.
func (t *Tracker) Frame(dec *Decoder, data []byte, ts int64) {
	t.stats.Packets++
	p := &t.pkt
	if err := dec.Decode(data, p); err != nil {
		if err == ErrNotTransport {
			t.stats.Skipped++
		} else {
			t.stats.Malformed++
		}
		t.advance(ts)
		return
	}
	p.Time = ts
	t.Track(p)
}

// Track tracks one decoded packet. Callers of Frame need not call it.
func (t *Tracker) Track(p *Packet) {
	if p.Truncated {
		t.stats.Truncated++
	}
	switch p.Proto {
	case TCP:
		t.stats.TCP++
	case UDP:
		if t.cfg.NoUDP {
			t.stats.Skipped++
			t.advance(p.Time)
			return
		}
		t.stats.UDP++
	default:
		t.stats.Skipped++
		return
	}
	t.advance(p.Time)

	k, srcLo := makeKey(p)
	slot := k.slot()
	f := t.recent[slot]
	if f == nil || !f.key.equal(&k) {
		f = t.table[k]
	}
	syn := p.Proto == TCP && p.Flags&(FlagSYN|FlagACK) == FlagSYN
	if f != nil && syn && f.reusedBy(p, srcLo) {
		t.stats.Reused++
		t.end(f, EndReused)
		f = nil
	}
	if f == nil {
		f = t.create(k, p, srcLo)
	} else if t.clock-f.listed >= lruGranularity {
		// The list is kept in order of when entries were moved to its
		// front, at most once per lruGranularity of capture time: moving
		// on every packet touches two neighbours' cache lines, a
		// measurable part of the per-packet cost.
		t.moveFront(f)
		f.listed = t.clock
	}
	f.touch = t.clock
	t.recent[slot] = f
	d := 0
	if srcLo != f.aLo {
		d = 1
	}
	if p.Proto == TCP {
		f.tcp(p, d, t.clock, int64(t.cfg.BusyGap))
	} else {
		f.udp(p, d)
	}
	if t.cfg.Periodic > 0 && f.established && f.closedAt == 0 && p.Time-f.lastPeriodic >= int64(t.cfg.Periodic) {
		f.lastPeriodic = p.Time
		t.stats.Periodic++
		t.deliver(f, EndPeriodic)
	}
}

// Advance moves the tracker's clock to now (capture time, Unix ns) without
// a packet, and ends the connections whose timeouts passed by then (at
// most one scan per second of capture time, as packets do). The clock
// only runs on packet timestamps otherwise, so on a quiet network a
// connection closed by FIN would wait for the next packet to be reported:
// a live capture calls Advance when its source was idle, with wall time
// (live timestamps are the kernel's wall clock). An offline reader does
// not, and stays a pure function of the capture. A now behind the clock
// is ignored.
func (t *Tracker) Advance(now int64) { t.advance(now) }

// advance moves the tracker clock (never backwards: merged captures jump)
// and runs the timeout scan once a second of capture time.
func (t *Tracker) advance(ts int64) {
	if ts > t.clock {
		t.clock = ts
	}
	if t.clock-t.lastScan >= scanEvery {
		t.lastScan = t.clock
		t.expire()
	}
}

// recentSize is the number of slots of Tracker.recent (a power of two).
const recentSize = 1024

// slot is k's place in Tracker.recent: a multiplicative hash of the
// words, top bits.
func (k *key) slot() uint32 {
	h := (k.lo0^k.lo1)*0x9e3779b97f4a7c15 ^ (k.hi0^k.hi1)*0xc2b2ae3d27d4eb4f ^ (uint64(k.ports)<<8|uint64(k.proto))*0x165667b19e3779f9
	return uint32(h >> (64 - 10))
}

// equal is k == *o, compared word by word inline (== on the struct
// calls memequal).
func (k *key) equal(o *key) bool {
	return k.lo1 == o.lo1 && k.hi1 == o.hi1 && k.ports == o.ports && k.lo0 == o.lo0 && k.hi0 == o.hi0 && k.proto == o.proto
}

func makeKey(p *Packet) (key, bool) {
	s, d := p.Src.As16(), p.Dst.As16()
	// Order the endpoints by address then port, comparing the addresses
	// as two big-endian words (cheaper than bytes.Compare here).
	s0, s1 := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])
	d0, d1 := binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:])
	srcLo := s0 < d0 || s0 == d0 && (s1 < d1 || s1 == d1 && p.SrcPort <= p.DstPort)
	if srcLo {
		return key{s0, s1, d0, d1, uint32(p.SrcPort)<<16 | uint32(p.DstPort), uint32(p.Proto)}, true
	}
	return key{d0, d1, s0, s1, uint32(p.DstPort)<<16 | uint32(p.SrcPort), uint32(p.Proto)}, false
}

// reusedBy tells whether a SYN (without ACK) starts a new connection on the
// endpoints of f: the old one was closed (FIN both ways or RST), or the
// SYN's sequence number differs from the one its sender used before
// (tcptrace's rule), or the old connection saw a FIN and never a SYN.
func (f *flow) reusedBy(p *Packet, srcLo bool) bool {
	d := 0
	if srcLo != f.aLo {
		d = 1
	}
	s := &f.dir[d]
	if s.synCount > 0 && s.synSeq != p.Seq {
		return true
	}
	if f.closedAt != 0 {
		return true
	}
	return (f.conn.FinAB || f.conn.FinBA) && s.synCount == 0
}

func (t *Tracker) create(k key, p *Packet, srcLo bool) *flow {
	if len(t.table) >= t.cfg.MaxConns && t.tail != nil {
		t.stats.Evicted++
		t.end(t.tail, EndEvicted)
	}
	var f *flow
	if n := len(t.free); n > 0 {
		f = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		f = new(flow)
	}
	f.key = k
	// A is the sender of the first SYN; a SYN-ACK seen first names its
	// receiver; otherwise the sender of the first packet.
	aIsSrc := !(p.Proto == TCP && p.Flags&(FlagSYN|FlagACK) == FlagSYN|FlagACK)
	f.aLo = srcLo == aIsSrc
	t.nextID++
	c := &f.conn
	c.ID = t.nextID
	c.Proto = p.Proto
	src, dst := addrPort(p.Src, p.SrcPort), addrPort(p.Dst, p.DstPort)
	if aIsSrc {
		c.A, c.B = src, dst
	} else {
		c.A, c.B = dst, src
	}
	f.first, f.last, f.lastPeriodic = p.Time, p.Time, p.Time
	f.listed = t.clock
	f.lastDataDir = -1
	t.attachHosts(f)
	t.table[k] = f
	t.pushFront(f)
	t.stats.Conns++
	return f
}

// end removes f from the table, delivers its final record and recycles it.
func (t *Tracker) end(f *flow, why EndReason) {
	if s := f.key.slot(); t.recent[s] == f {
		t.recent[s] = nil
	}
	delete(t.table, f.key)
	t.unlink(f)
	t.deliver(f, why)
	t.detachHosts(f)
	f.release()
	t.free = append(t.free, f)
}

func (t *Tracker) deliver(f *flow, why EndReason) {
	f.finish(why)
	if t.cfg.OnConn != nil {
		t.cfg.OnConn(&f.conn)
	}
}

// release clears f for reuse, keeping the capacity of its sample buffers.
func (f *flow) release() {
	r, ts := f.rtt, f.tsrtt
	for i := range r {
		r[i].reset()
		ts[i].reset()
	}
	*f = flow{rtt: r, tsrtt: ts}
}

// expire ends the connections whose timeout passed. The LRU list is in
// order of f.listed, which never exceeds f.touch, so the walk stops at the
// first entry listed within the shortest timeout: none after it can have
// been idle longer.
func (t *Tracker) expire() {
	for f := t.tail; f != nil; {
		if t.clock-f.listed <= t.minTO {
			return
		}
		prev := f.prev
		if t.clock-f.touch > t.timeout(f) {
			if f.closedAt != 0 {
				t.stats.Closed++
				t.end(f, EndClosed)
			} else {
				t.stats.IdleExpired++
				t.end(f, EndIdle)
			}
		}
		f = prev
	}
}

func (t *Tracker) timeout(f *flow) int64 {
	switch {
	case f.closedAt != 0:
		return int64(t.cfg.CloseLinger)
	case f.conn.Proto == UDP:
		return int64(t.cfg.UDPTimeout)
	case !f.established:
		return int64(t.cfg.SYNTimeout)
	}
	return int64(t.cfg.IdleTimeout)
}

// Flush ends every connection in the table (Reason EndFlush, or EndClosed
// for those already closed), delivering their records in creation order,
// e.g. at the end of a capture file.
func (t *Tracker) Flush() {
	// Oldest first by ID so that offline output follows the capture.
	fs := make([]*flow, 0, len(t.table))
	for _, f := range t.table {
		fs = append(fs, f)
	}
	sortFlows(fs)
	for _, f := range fs {
		if f.closedAt != 0 {
			t.stats.Closed++
			t.end(f, EndClosed)
		} else {
			t.stats.Flushed++
			t.end(f, EndFlush)
		}
	}
}

// LRU list.

func (t *Tracker) pushFront(f *flow) {
	f.prev, f.next = nil, t.head
	if t.head != nil {
		t.head.prev = f
	}
	t.head = f
	if t.tail == nil {
		t.tail = f
	}
}

func (t *Tracker) unlink(f *flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		t.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		t.tail = f.prev
	}
	f.prev, f.next = nil, nil
}

func (t *Tracker) moveFront(f *flow) {
	if t.head == f {
		return
	}
	t.unlink(f)
	t.pushFront(f)
}

// Lookup returns a snapshot of the connection between a and b (either
// order) if it is in the table: the record as it would be delivered now
// (Reason EndPeriodic, Final false).
func (t *Tracker) Lookup(proto Proto, a, b netip.AddrPort) (Conn, bool) {
	var p Packet
	p.Proto, p.Src, p.SrcPort, p.Dst, p.DstPort = proto, a.Addr(), a.Port(), b.Addr(), b.Port()
	k, _ := makeKey(&p)
	f := t.table[k]
	if f == nil {
		return Conn{}, false
	}
	f.finish(EndPeriodic)
	return f.conn, true
}
