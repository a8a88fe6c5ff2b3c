package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
)

// TestReportOf turns TCP_INFO differences into reports.
func TestReportOf(t *testing.T) {
	m := &Meter{}
	local, remote := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.7")
	base := tcpSnap{acked: 1000, busy: 5000, segsOut: 10, retrans: 1}
	tests := []struct {
		name     string
		to       tcpSnap
		ok       bool
		thr      float64 // bytes/s
		loss     float64
		duration float64
	}{
		{"too few bytes", tcpSnap{acked: 1000 + DefaultMinReportBytes - 1, busy: 900000}, false, 0, 0, 0},
		{"counters went back", tcpSnap{acked: 10}, false, 0, 0, 0},
		{"one second busy", tcpSnap{acked: 1000 + 100_000, busy: 1_005_000, segsOut: 110, retrans: 6, rtt: 40_000, minRTT: 20_000}, true, 100_000, 0.05, 1},
		{"busy below a jiffy: one RTT", tcpSnap{acked: 1000 + 20_000, busy: 5000, segsOut: 30, retrans: 1, rtt: 10_000, minRTT: 10_000}, true, 2_000_000, 0, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := m.reportOf(local, remote, base, tt.to)
			if ok != tt.ok {
				t.Fatalf("ok %t, want %t: %+v", ok, tt.ok, r)
			}
			if !ok {
				return
			}
			if r.Local != remote || r.Remote != local || r.Class != spand.ClassWeb || r.Throughput != tt.thr || r.Loss != tt.loss || r.Duration != tt.duration {
				t.Errorf("report %+v; want client %s as local, throughput %v, loss %v, duration %v", r, remote, tt.thr, tt.loss, tt.duration)
			}
			if r.RTTMin != float64(tt.to.minRTT)/1000 || r.RTTMedian != float64(tt.to.rtt)/1000 {
				t.Errorf("RTT %v/%v ms, want %v/%v", r.RTTMin, r.RTTMedian, tt.to.minRTT/1000, tt.to.rtt/1000)
			}
		})
	}
}

// recorder is a ReportSink that keeps the reports and passes them to a
// real store.
type recorder struct {
	mu      sync.Mutex
	reports []spand.Report
	store   *spand.MemoryStore
}

func (r *recorder) Add(ctx context.Context, rs []spand.Report) error {
	r.mu.Lock()
	r.reports = append(r.reports, rs...)
	r.mu.Unlock()
	return r.store.Add(ctx, rs)
}

func (r *recorder) got() []spand.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]spand.Report(nil), r.reports...)
}

// TestMeterLoopback serves a loopback client through the proxy's
// Listener (congestion manager and meter): an interim report while the
// connection is open, a final one when it closes, both in the store as
// the client's own (local) measurements; the host's activity counts the
// bytes written.
func TestMeterLoopback(t *testing.T) {
	store, err := spand.NewMemoryStore(spand.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{store: store}
	m := &Meter{Sink: rec}
	cm := congestion.NewManager(congestion.Config{})
	defer cm.Close()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &Listener{Listener: inner, Manager: cm, Meter: m}
	defer ln.Close()

	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.(*meteredConn).Conn.(*congestion.Conn); !ok {
		t.Fatalf("accepted %T inside the meter, want a *congestion.Conn", srv.(*meteredConn).Conn)
	}
	chunk := make([]byte, 256<<10)
	send := func() {
		t.Helper()
		errc := make(chan error, 1)
		go func() { _, err := srv.Write(chunk); errc <- err }()
		if _, err := io.ReadFull(client, make([]byte, len(chunk))); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	send()
	// The client read it all, so all of it was acknowledged (the ACKs
	// may still be on their way to the kernel's counter: poll).
	testenv.Poll(t, 5*time.Second, "an interim report of an open connection", func() bool {
		m.tick()
		return len(rec.got()) > 0
	})
	send()
	srv.Close()
	rs := rec.got()
	if len(rs) != 2 || !rs[0].Periodic || rs[1].Periodic {
		t.Fatalf("reports %+v; want one interim and one final", rs)
	}
	if total := rs[0].Bytes + rs[1].Bytes; total < 2*int64(len(chunk)) {
		t.Errorf("reports cover %d bytes, want %d", total, 2*len(chunk))
	}
	h, ok := m.Activity(netip.MustParseAddr("127.0.0.1"))
	if !ok || h.Written != 2*int64(len(chunk)) || h.Delivered != rs[1].Throughput {
		t.Errorf("activity %+v (known %t); want %d bytes written, the final report's %v B/s delivered", h, ok, 2*len(chunk), rs[1].Throughput)
	}
	if sent, failed := m.Stats(); sent != 2 || failed != 0 {
		t.Errorf("stats: %d sent, %d failed", sent, failed)
	}
	// On loopback the proxy (remote) is the client (local) too, so the
	// host table, asked first, answers with the same two reports.
	p, _ := store.Predict(context.Background(), netip.MustParseAddr("127.0.0.1"), spand.ClassWeb)
	if p.Reports != 2 || p.Throughput <= 0 || (p.Source != "local" && p.Source != "host") {
		t.Errorf("store predicts %+v; want the client's two reports", p)
	}
}

// TestListenerUngated: a connection the congestion manager refuses (here
// over its flows per macroflow) is still served, ungated, and counted.
func TestListenerUngated(t *testing.T) {
	cm := congestion.NewManager(congestion.Config{MaxFlowsPerMacroflow: 1})
	defer cm.Close()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &Listener{Listener: inner, Manager: cm}
	defer ln.Close()
	var served []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		served = append(served, s)
		if _, err := s.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := served[0].(*congestion.Conn); !ok {
		t.Errorf("first connection is %T, want *congestion.Conn", served[0])
	}
	if _, ok := served[1].(*net.TCPConn); !ok || ln.Ungated() != 1 {
		t.Errorf("second connection is %T, ungated %d; want a plain *net.TCPConn, counted", served[1], ln.Ungated())
	}
}
