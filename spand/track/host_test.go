package track_test

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/track"
	"github.com/edgeadapt/edgeadapt/spand/track/tracktest"
)

// kaConn is one keep-alive connection of a synthetic client.
type kaConn struct {
	c, s       netip.AddrPort
	cseq, sseq uint32
}

func (k *kaConn) open(f *feeder) {
	k.cseq, k.sseq = 1000, 5000
	f.send(tracktest.Segment{Src: k.c, Dst: k.s, SYN: true, Seq: k.cseq, Window: 1000}, 0)
	f.send(tracktest.Segment{Src: k.s, Dst: k.c, SYN: true, ACK: true, Seq: k.sseq, Ack: k.cseq + 1, Window: 1000}, 0)
	k.cseq, k.sseq = k.cseq+1, k.sseq+1
	f.send(tracktest.Segment{Src: k.c, Dst: k.s, ACK: true, Seq: k.cseq, Ack: k.sseq, Window: 1000}, 0)
}

func (k *kaConn) request(f *feeder) {
	f.send(tracktest.Segment{Src: k.c, Dst: k.s, ACK: true, PSH: true, Seq: k.cseq, Ack: k.sseq, Window: 1000, Payload: make([]byte, 100)}, 0)
	k.cseq += 100
}

func (k *kaConn) segment(f *feeder, dt time.Duration) {
	f.send(tracktest.Segment{Src: k.s, Dst: k.c, ACK: true, Seq: k.sseq, Ack: k.cseq, Window: 1000, Payload: make([]byte, 1000)}, dt)
	k.sseq += 1000
}

func (k *kaConn) close(f *feeder) {
	f.send(tracktest.Segment{Src: k.s, Dst: k.c, ACK: true, FIN: true, Seq: k.sseq, Ack: k.cseq, Window: 1000}, 0)
	f.send(tracktest.Segment{Src: k.c, Dst: k.s, ACK: true, FIN: true, Seq: k.cseq, Ack: k.sseq + 1, Window: 1000}, 0)
	f.send(tracktest.Segment{Src: k.s, Dst: k.c, ACK: true, Seq: k.sseq + 1, Ack: k.cseq + 1, Window: 1000}, 0)
}

// playParallel plays a client loading `rounds` pages over n keep-alive
// connections: each round a request on every connection, then their
// responses of segs 1000-byte segments interleaved one ms apart (a
// 1 MB/s link shared by all), then idle seconds of nothing.
func playParallel(f *feeder, n, rounds, segs int, idle time.Duration) {
	cs := make([]*kaConn, n)
	for i := range cs {
		cs[i] = &kaConn{c: netip.AddrPortFrom(cli.Addr(), uint16(40000+i)), s: srv}
		cs[i].open(f)
	}
	for range rounds {
		for _, k := range cs {
			k.request(f)
		}
		f.now = f.now.Add(20 * time.Millisecond)
		for range segs {
			for _, k := range cs {
				k.segment(f, time.Millisecond)
			}
		}
		f.now = f.now.Add(idle)
	}
	for _, k := range cs {
		k.close(f)
	}
}

// TestHostRate: the receiver's rate counts all its connections and only
// busy time, while Throughput (tcptrace) stays bytes over the lifetime.
func TestHostRate(t *testing.T) {
	const link = 1e6 // bytes/s: one 1000-byte segment per ms
	tests := []struct {
		name        string
		conns       int
		rounds      int
		idle        time.Duration
		maxThrRatio float64 // each connection's Throughput / link is below this
	}{
		{"single connection, no idle", 1, 1, 0, 1.01},
		{"single keep-alive connection, idle gaps", 1, 4, 3 * time.Second, 0.05},
		{"six parallel connections", 6, 1, 0, 1.0 / 6 * 1.01},
		{"six parallel keep-alive connections, idle gaps", 6, 4, 3 * time.Second, 0.02},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFeeder(t, track.Config{})
			playParallel(f, tt.conns, tt.rounds, 50, tt.idle)
			f.tr.Flush()
			if len(f.conns) != tt.conns {
				t.Fatalf("%d records, want %d", len(f.conns), tt.conns)
			}
			for _, c := range f.conns {
				if got := c.BA.ReceiverRate; math.Abs(got-link)/link > 0.01 {
					t.Errorf("conn %v: receiver rate %.0f B/s, want %.0f", c.A, got, float64(link))
				}
				if got := c.BA.SenderRate; math.Abs(got-link)/link > 0.01 {
					t.Errorf("conn %v: sender rate %.0f B/s, want %.0f", c.A, got, float64(link))
				}
				if c.BA.Throughput > tt.maxThrRatio*link {
					t.Errorf("conn %v: throughput %.0f B/s, want below %.0f (lifetime definition)", c.A, c.BA.Throughput, tt.maxThrRatio*link)
				}
				want := float64(c.BA.UniqueBytes) / c.Elapsed().Seconds()
				if c.BA.Throughput != want {
					t.Errorf("conn %v: throughput %v, want unique/elapsed %v", c.A, c.BA.Throughput, want)
				}
			}
		})
	}
}

// TestHostRateSeparateHosts: two clients on the same server do not add up
// at the clients, and a connection only counts the host's traffic during
// its own lifetime.
func TestHostRateSeparateHosts(t *testing.T) {
	f := newFeeder(t, track.Config{})
	a := &kaConn{c: cli, s: srv}
	b := &kaConn{c: netip.MustParseAddrPort("192.168.1.3:40000"), s: srv}
	a.open(f)
	b.open(f)
	a.request(f)
	b.request(f)
	for range 50 {
		a.segment(f, time.Millisecond)   // a gets 1000 bytes per 2 ms
		b.segment(f, 3*time.Millisecond) // b the same per 4 ms
	}
	a.close(f)
	b.close(f)
	f.tr.Flush()
	got := map[string]float64{}
	for _, c := range f.conns {
		got[c.A.Addr().String()] = c.BA.ReceiverRate
	}
	// Each client gets a segment every 4 ms: 250 kB/s each, not the
	// server's 500 kB/s.
	for addr, want := range map[string]float64{"192.168.1.2": 250e3, "192.168.1.3": 250e3} {
		if r := got[addr]; math.Abs(r-want)/want > 0.01 {
			t.Errorf("%s: receiver rate %.0f, want ~%.0f", addr, r, want)
		}
	}
	if n := fmt.Sprint(len(f.conns)); n != "2" {
		t.Errorf("%s records", n)
	}
}
