package track_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/edgeadapt/edgeadapt/spand/track"
	"github.com/edgeadapt/edgeadapt/spand/track/tracktest"
)

// feeder sends synthetic segments through a Decoder into a Tracker.
type feeder struct {
	t     testing.TB
	dec   *track.Decoder
	tr    *track.Tracker
	conns []track.Conn
	now   time.Time
}

func newFeeder(t testing.TB, cfg track.Config) *feeder {
	f := &feeder{t: t, now: time.Unix(1_700_000_000, 0)}
	cfg.OnConn = func(c *track.Conn) {
		if c.Final {
			f.conns = append(f.conns, *c)
		}
	}
	f.dec, _ = track.NewDecoder(layers.LinkTypeEthernet)
	f.tr = track.New(cfg)
	return f
}

// send feeds one segment at the current time, then advances it by dt.
func (f *feeder) send(s tracktest.Segment, dt time.Duration) {
	f.tr.Frame(f.dec, tracktest.Frame(layers.LinkTypeEthernet, s), f.now.UnixNano())
	f.now = f.now.Add(dt)
}

var (
	cli = netip.MustParseAddrPort("192.168.1.2:40000")
	srv = netip.MustParseAddrPort("198.51.100.7:80")
)

// exchange plays a complete HTTP-like connection: handshake (rtt), a
// request, a response of n segments of 1000 bytes one ms apart, and the
// close.
func exchange(f *feeder, c, s netip.AddrPort, rtt time.Duration, n int) {
	half := rtt / 2
	f.send(tracktest.Segment{Src: c, Dst: s, SYN: true, Seq: 1000, Window: 1000}, half)
	f.send(tracktest.Segment{Src: s, Dst: c, SYN: true, ACK: true, Seq: 5000, Ack: 1001, Window: 1000}, half)
	f.send(tracktest.Segment{Src: c, Dst: s, ACK: true, Seq: 1001, Ack: 5001, Window: 1000}, 0)
	f.send(tracktest.Segment{Src: c, Dst: s, ACK: true, PSH: true, Seq: 1001, Ack: 5001, Window: 1000, Payload: make([]byte, 100)}, 20*time.Millisecond)
	seq := uint32(5001)
	for i := 0; i < n; i++ {
		f.send(tracktest.Segment{Src: s, Dst: c, ACK: true, Seq: seq, Ack: 1101, Window: 1000, Payload: make([]byte, 1000)}, time.Millisecond)
		seq += 1000
	}
	f.send(tracktest.Segment{Src: c, Dst: s, ACK: true, Seq: 1101, Ack: seq, Window: 1000}, 0)
	f.send(tracktest.Segment{Src: s, Dst: c, ACK: true, FIN: true, Seq: seq, Ack: 1101, Window: 1000}, half)
	f.send(tracktest.Segment{Src: c, Dst: s, ACK: true, FIN: true, Seq: 1101, Ack: seq + 1, Window: 1000}, half)
	f.send(tracktest.Segment{Src: s, Dst: c, ACK: true, Seq: seq + 1, Ack: 1102, Window: 1000}, 0)
}

func TestTrackerExchange(t *testing.T) {
	f := newFeeder(t, track.Config{})
	exchange(f, cli, srv, 40*time.Millisecond, 50)
	f.tr.Flush()
	if len(f.conns) != 1 {
		t.Fatalf("%d records", len(f.conns))
	}
	c := f.conns[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"A", c.A, cli}, {"B", c.B, srv}, {"class", c.Class, track.ClassWeb},
		{"complete", c.Complete, true}, {"reason", c.Reason, track.EndClosed},
		{"data a2b", c.AB.DataBytes, uint64(100)}, {"data b2a", c.BA.DataBytes, uint64(50000)},
		{"handshake", c.HandshakeRTT, 40 * time.Millisecond},
		{"response time", c.ResponseTime, 20 * time.Millisecond},
		{"responses", c.Responses, 1},
		// 49 000 bytes after the first segment over 49 ms: 1 MB/s; the
		// rate counts all 50 000 bytes over the 49 ms.
		{"response rate", int(c.ResponseRate), 1020408},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestTrackerSYNFlood: a million SYNs from distinct sources keep the table
// at MaxConns, evict the oldest, and do not grow the heap without bound.
func TestTrackerSYNFlood(t *testing.T) {
	const maxConns = 10000
	f := newFeeder(t, track.Config{MaxConns: maxConns})
	var evicted int
	f.tr = track.New(track.Config{MaxConns: maxConns, OnConn: func(c *track.Conn) {
		if c.Reason == track.EndEvicted {
			evicted++
		}
	}})
	syn := func(i int) {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		f.send(tracktest.Segment{Src: src, Dst: srv, SYN: true, Seq: uint32(i)}, time.Microsecond)
	}
	for i := 0; i < 2*maxConns; i++ {
		syn(i)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const flood = 500000
	for i := 2 * maxConns; i < 2*maxConns+flood; i++ {
		syn(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := f.tr.Stats()
	if st.Active > maxConns {
		t.Errorf("table holds %d entries, max %d", st.Active, maxConns)
	}
	if st.Evicted+st.IdleExpired+uint64(st.Active) != st.Conns {
		t.Errorf("evicted %d + expired %d + active %d != created %d", st.Evicted, st.IdleExpired, st.Active, st.Conns)
	}
	if evicted == 0 || uint64(evicted) != st.Evicted {
		t.Errorf("evictions delivered %d, counted %d", evicted, st.Evicted)
	}
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	if growth > 8<<20 {
		t.Errorf("heap grew %d bytes over %d more SYNs", growth, flood)
	}
	t.Logf("%d SYNs: table %d, evicted %d, SYN-timeout expired %d, heap growth %d bytes", st.Conns, st.Active, st.Evicted, st.IdleExpired, growth)
}

func TestTrackerTimeouts(t *testing.T) {
	f := newFeeder(t, track.Config{IdleTimeout: time.Minute, SYNTimeout: 5 * time.Second, CloseLinger: time.Second})
	other := netip.MustParseAddrPort("198.51.100.9:443")
	// A SYN that gets no answer, an established idle connection, a closed one.
	f.send(tracktest.Segment{Src: cli, Dst: other, SYN: true, Seq: 1}, 0)
	exchange(f, netip.MustParseAddrPort("192.168.1.2:40001"), srv, 10*time.Millisecond, 3)
	c2 := netip.MustParseAddrPort("192.168.1.3:40002")
	f.send(tracktest.Segment{Src: c2, Dst: srv, ACK: true, Seq: 1, Ack: 1, Window: 100, Payload: []byte("mid-stream")}, 0)
	f.send(tracktest.Segment{Src: srv, Dst: c2, ACK: true, Seq: 1, Ack: 11, Window: 100}, 0)
	reasons := func() map[string]track.EndReason {
		m := map[string]track.EndReason{}
		for _, c := range f.conns {
			m[c.A.String()] = c.Reason
		}
		return m
	}
	// 10 s later (another flow's packet moves the clock): the SYN-only
	// and the closed connection are gone, the idle one is not.
	f.now = f.now.Add(10 * time.Second)
	f.send(tracktest.Segment{Src: netip.MustParseAddrPort("192.168.1.9:1"), Dst: srv, UDP: true}, 0)
	r := reasons()
	if r[cli.String()] != track.EndIdle || r["192.168.1.2:40001"] != track.EndClosed || r[c2.String()] != 0 {
		t.Fatalf("after 10 s: %v", r)
	}
	f.now = f.now.Add(2 * time.Minute)
	f.send(tracktest.Segment{Src: netip.MustParseAddrPort("192.168.1.9:1"), Dst: srv, UDP: true}, 0)
	if r = reasons(); r[c2.String()] != track.EndIdle {
		t.Fatalf("after 2 min: %v", r)
	}
	st := f.tr.Stats()
	if st.IdleExpired < 2 || st.Closed != 1 {
		t.Errorf("stats %+v", st)
	}
	// The mid-stream connection: A is the first sender, not complete.
	for _, c := range f.conns {
		if c.A == c2 && (c.Complete || c.AB.DataBytes != 10 || c.B != srv) {
			t.Errorf("mid-stream record %+v", c)
		}
	}
}

// TestTrackerReuseAndTimeJump: a new SYN on the endpoints of a closed
// connection starts a new record; a capture whose clock jumps back and
// forth (merged files) neither panics nor loses data.
func TestTrackerReuseAndTimeJump(t *testing.T) {
	f := newFeeder(t, track.Config{})
	exchange(f, cli, srv, 10*time.Millisecond, 2)
	exchange(f, cli, srv, 10*time.Millisecond, 3) // same endpoints, new ISN after FIN
	f.now = f.now.Add(-48 * time.Hour)
	exchange(f, netip.MustParseAddrPort("192.168.1.2:40003"), srv, 10*time.Millisecond, 4)
	f.now = f.now.Add(3 * 365 * 24 * time.Hour)
	exchange(f, netip.MustParseAddrPort("192.168.1.2:40004"), srv, 10*time.Millisecond, 5)
	f.tr.Flush()
	if len(f.conns) != 4 {
		t.Fatalf("%d records, want 4", len(f.conns))
	}
	for i, c := range f.conns {
		if want := uint64(1000 * (i + 2)); c.BA.DataBytes != want || !c.Complete {
			t.Errorf("record %d: %d bytes (want %d), complete %v", i, c.BA.DataBytes, want, c.Complete)
		}
	}
	if st := f.tr.Stats(); st.Reused != 1 {
		t.Errorf("reused %d, want 1", st.Reused)
	}
}

// TestTrackerRetransmission: a segment sent twice counts in data bytes and
// rexmt, not in unique bytes, and gives no RTT sample (Karn).
func TestTrackerRetransmission(t *testing.T) {
	f := newFeeder(t, track.Config{})
	f.send(tracktest.Segment{Src: cli, Dst: srv, SYN: true, Seq: 0, Window: 100}, 10*time.Millisecond)
	f.send(tracktest.Segment{Src: srv, Dst: cli, SYN: true, ACK: true, Seq: 0, Ack: 1, Window: 100}, 10*time.Millisecond)
	f.send(tracktest.Segment{Src: cli, Dst: srv, ACK: true, Seq: 1, Ack: 1, Window: 100}, 0)
	seg := func(seq uint32) tracktest.Segment {
		return tracktest.Segment{Src: srv, Dst: cli, ACK: true, Seq: seq, Ack: 1, Window: 100, Payload: make([]byte, 500)}
	}
	f.send(seg(1), time.Millisecond)
	f.send(seg(501), 200*time.Millisecond)
	f.send(seg(501), 5*time.Millisecond) // timeout retransmission
	f.send(tracktest.Segment{Src: cli, Dst: srv, ACK: true, Seq: 1, Ack: 1001, Window: 100}, 0)
	f.tr.Flush()
	c := f.conns[0]
	if c.BA.DataBytes != 1500 || c.BA.UniqueBytes != 1000 || c.BA.RexmtPackets != 1 || c.BA.RexmtBytes != 500 {
		t.Errorf("b2a %+v", c.BA)
	}
	// Samples: the SYN-ACK's (10 ms) only; the ACK of 1001 covers a
	// retransmitted segment.
	if c.BA.RTTSamples != 1 || c.BA.RTTMin != 10*time.Millisecond {
		t.Errorf("b2a RTT samples %d min %v", c.BA.RTTSamples, c.BA.RTTMin)
	}
	if c.Complete || c.Class != track.ClassWeb {
		t.Errorf("complete %v class %v", c.Complete, c.Class)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name   string
		server string
		sizes  []int // payloads alternating a->b, b->a
		want   track.Class
	}{
		{"web by port", "198.51.100.7:443", []int{300, 20000}, track.ClassWeb},
		{"interactive ssh", "198.51.100.7:22", []int{40, 40, 40, 40}, track.ClassInteractive},
		{"bulk over ssh", "198.51.100.7:22", []int{40, 300 << 10}, track.ClassBulk},
		{"interactive by size", "198.51.100.7:7000", []int{10, 10, 10, 10}, track.ClassInteractive},
		{"request/response", "198.51.100.7:9000", []int{200, 5000}, track.ClassWeb},
		{"bulk upload", "198.51.100.7:9000", []int{100000, 0}, track.ClassBulk},
		{"no data", "198.51.100.7:9000", nil, track.ClassOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeeder(t, track.Config{})
			s := netip.MustParseAddrPort(tc.server)
			f.send(tracktest.Segment{Src: cli, Dst: s, SYN: true, Seq: 0, Window: 100}, time.Millisecond)
			f.send(tracktest.Segment{Src: s, Dst: cli, SYN: true, ACK: true, Seq: 0, Ack: 1, Window: 100}, time.Millisecond)
			seq := [2]uint32{1, 1}
			for i, n := range tc.sizes {
				src, dst := cli, s
				if i%2 == 1 {
					src, dst = s, cli
				}
				for n > 0 {
					m := min(n, 1400)
					f.send(tracktest.Segment{Src: src, Dst: dst, ACK: true, Seq: seq[i%2], Ack: seq[1-i%2], Window: 100, Payload: make([]byte, m)}, time.Millisecond)
					seq[i%2] += uint32(m)
					n -= m
				}
			}
			f.tr.Flush()
			if got := f.conns[0].Class; got != tc.want {
				t.Errorf("class %s, want %s: %+v", got, tc.want, f.conns[0])
			}
		})
	}
	// UDP: a steady media stream, DNS.
	f := newFeeder(t, track.Config{})
	for i := 0; i < 50; i++ {
		f.send(tracktest.Segment{Src: netip.MustParseAddrPort("192.168.1.2:40000"), Dst: netip.MustParseAddrPort("198.51.100.7:9999"), UDP: true, Payload: make([]byte, 160)}, 20*time.Millisecond)
	}
	f.send(tracktest.Segment{Src: cli, Dst: netip.MustParseAddrPort("198.51.100.7:53"), UDP: true, Payload: make([]byte, 40)}, 0)
	f.tr.Flush()
	got := fmt.Sprint(f.conns[0].Class, f.conns[1].Class)
	if got != fmt.Sprint(track.ClassRealtime, track.ClassOther) {
		t.Errorf("UDP classes %s", got)
	}
}

// TestTrackerPeriodic: a long connection gets interim records (Final
// false) at the configured interval, then one final record.
func TestTrackerPeriodic(t *testing.T) {
	var recs []track.Conn
	f := newFeeder(t, track.Config{})
	f.tr = track.New(track.Config{Periodic: time.Second, OnConn: func(c *track.Conn) { recs = append(recs, *c) }})
	f.send(tracktest.Segment{Src: cli, Dst: srv, SYN: true, Seq: 0, Window: 100}, time.Millisecond)
	f.send(tracktest.Segment{Src: srv, Dst: cli, SYN: true, ACK: true, Seq: 0, Ack: 1, Window: 100}, time.Millisecond)
	for i := 0; i < 35; i++ { // 3.5 s of data
		f.send(tracktest.Segment{Src: srv, Dst: cli, ACK: true, Seq: uint32(1 + 1000*i), Ack: 1, Window: 100, Payload: make([]byte, 1000)}, 100*time.Millisecond)
	}
	f.tr.Flush()
	var periodic int
	for _, r := range recs[:len(recs)-1] {
		if r.Final || r.Reason != track.EndPeriodic {
			t.Errorf("interim record %+v", r)
		}
		periodic++
	}
	last := recs[len(recs)-1]
	if periodic != 3 || !last.Final || last.BA.DataBytes != 35000 {
		t.Errorf("%d periodic records, final %v with %d bytes", periodic, last.Final, last.BA.DataBytes)
	}
}

func TestClassifyConversation(t *testing.T) {
	f := newFeeder(t, track.Config{})
	s := netip.MustParseAddrPort("198.51.100.7:41644")
	f.send(tracktest.Segment{Src: cli, Dst: s, SYN: true, Seq: 0, Window: 100}, time.Millisecond)
	f.send(tracktest.Segment{Src: s, Dst: cli, SYN: true, ACK: true, Seq: 0, Ack: 1, Window: 100}, time.Millisecond)
	f.send(tracktest.Segment{Src: s, Dst: cli, ACK: true, Seq: 1, Ack: 1, Window: 100, Payload: make([]byte, 300)}, time.Millisecond)
	f.send(tracktest.Segment{Src: cli, Dst: s, ACK: true, Seq: 1, Ack: 301, Window: 100, Payload: make([]byte, 300)}, time.Millisecond)
	f.tr.Flush()
	// B spoke first, A answered: no request/response from A's side, data
	// both ways, small: a conversation.
	if got := f.conns[0].Class; got != track.ClassInteractive {
		t.Errorf("class %s, want interactive", got)
	}
}

// TestTrackerAdvance: with no packet after a connection's close, only
// Advance moves the clock (a fake one here, as a live capture's idle
// reads do with wall time): the record comes once CloseLinger has passed,
// not before; an idle connection ends at IdleTimeout the same way, and a
// clock set backwards changes nothing.
func TestTrackerAdvance(t *testing.T) {
	const linger, idle = 5 * time.Second, time.Minute
	f := newFeeder(t, track.Config{CloseLinger: linger, IdleTimeout: idle})
	c2 := netip.MustParseAddrPort("192.168.1.3:40002")
	f.send(tracktest.Segment{Src: c2, Dst: srv, ACK: true, Seq: 1, Ack: 1, Window: 100, Payload: []byte("mid-stream")}, 0)
	f.send(tracktest.Segment{Src: srv, Dst: c2, ACK: true, Seq: 1, Ack: 11, Window: 100}, 0)
	exchange(f, cli, srv, 10*time.Millisecond, 3)
	last := f.now // the time of the last packet
	steps := []struct {
		at    time.Duration // fake clock after the last packet
		wantN int
	}{
		{0, 0},
		{linger - 10*time.Millisecond, 0},
		{-time.Hour, 0}, // backwards: ignored
		{linger + 1100*time.Millisecond, 1},
		{idle - time.Second, 1},
		{idle + 1100*time.Millisecond, 2},
	}
	for _, s := range steps {
		f.tr.Advance(last.Add(s.at).UnixNano())
		if len(f.conns) != s.wantN {
			t.Fatalf("at last packet + %v: %d records, want %d", s.at, len(f.conns), s.wantN)
		}
	}
	if c := f.conns[0]; c.A != cli || c.Reason != track.EndClosed || c.BA.DataBytes != 3000 {
		t.Errorf("first record %v %v %d bytes, want the closed exchange", c.A, c.Reason, c.BA.DataBytes)
	}
	if c := f.conns[1]; c.A != c2 || c.Reason != track.EndIdle {
		t.Errorf("second record %v %v, want the idle connection", c.A, c.Reason)
	}
	if st := f.tr.Stats(); st.Active != 0 || st.Packets != 13 {
		t.Errorf("stats %+v", st)
	}
}
