package track

import (
	"net/netip"
	"time"
)

// DefaultBusyGap is the zero value of Config.BusyGap.
const DefaultBusyGap = 500 * time.Millisecond

// meter measures one host's traffic in one direction (sent or received)
// over all its connections: bytes and busy time, where busy time is the
// sum of the gaps between consecutive data packets no longer than the
// busy gap. A longer gap is idle time (a keep-alive connection waiting
// for the next request, a user reading a page); the packet after it
// starts a new burst and its bytes are not counted, so that bytes and
// busy time cover the same stretches (n-1 packets over n-1 gaps).
type meter struct {
	last, bytes, busy int64
}

func (m *meter) add(n, now, gap int64) {
	if m.last != 0 {
		d := max(now-m.last, 0) // packets of several connections may come slightly out of order
		if d <= gap {
			m.busy += d
			m.bytes += n
		}
	}
	m.last = max(m.last, now)
}

// host is the busy-time accounting of one address, shared by all its
// connections in the table (refs of them); it goes when the last does, so
// there are at most two per table entry.
type host struct {
	sent, recv meter
	refs       int
}

// meterMark is a meter's bytes and busy time when a connection started;
// the difference at the end is what the host did during the connection.
type meterMark struct{ bytes, busy int64 }

func (m *meter) mark() meterMark { return meterMark{m.bytes, m.busy} }

// rate is the bytes per second m counted since mk, 0 when no busy time
// passed.
func (m *meter) rate(mk meterMark) float64 {
	busy := m.busy - mk.busy
	if busy <= 0 {
		return 0
	}
	return float64(m.bytes-mk.bytes) / (float64(busy) / 1e9)
}

func (t *Tracker) hostRef(a netip.Addr) *host {
	a = a.Unmap()
	h := t.hosts[a]
	if h == nil {
		h = new(host)
		t.hosts[a] = h
	}
	h.refs++
	return h
}

func (t *Tracker) hostUnref(a netip.Addr, h *host) {
	if h == nil {
		return
	}
	if h.refs--; h.refs <= 0 {
		delete(t.hosts, a.Unmap())
	}
}

// attachHosts links f to the accounting of its two addresses and marks
// where their meters stand.
func (t *Tracker) attachHosts(f *flow) {
	f.host[0], f.host[1] = t.hostRef(f.conn.A.Addr()), t.hostRef(f.conn.B.Addr())
	for i, h := range f.host {
		f.hostMark[i] = [2]meterMark{h.sent.mark(), h.recv.mark()}
	}
}

func (t *Tracker) detachHosts(f *flow) {
	t.hostUnref(f.conn.A.Addr(), f.host[0])
	t.hostUnref(f.conn.B.Addr(), f.host[1])
}

// hostData accounts n unique bytes sent in direction d at now.
func (f *flow) hostData(d int, n, now, gap int64) {
	if s, r := f.host[d], f.host[1-d]; s != nil && r != nil {
		s.sent.add(n, now, gap)
		r.recv.add(n, now, gap)
	}
}

// hostRates fills in SenderRate and ReceiverRate of both directions.
func (f *flow) hostRates() {
	for d := range 2 {
		st := f.stats(d)
		st.SenderRate, st.ReceiverRate = 0, 0
		if s, r := f.host[d], f.host[1-d]; s != nil && r != nil {
			st.SenderRate = s.sent.rate(f.hostMark[d][0])
			st.ReceiverRate = r.recv.rate(f.hostMark[1-d][1])
		}
	}
}
