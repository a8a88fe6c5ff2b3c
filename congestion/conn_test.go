package congestion

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFeedbackFrom(t *testing.T) {
	base := unix.TCPInfo{Snd_mss: 1000, Rtt: 80_000, Bytes_acked: 1e6, Bytes_retrans: 5000, Dsack_dups: 1, Total_rto: 1, Delivered_ce: 3}
	for _, tc := range []struct {
		name string
		cur  func(*unix.TCPInfo)
		want feedback
	}{
		{"acks only", func(i *unix.TCPInfo) { i.Bytes_acked += 30000 },
			feedback{nrecd: 30000, mode: NoCongestion, rtt: 80 * time.Millisecond}},
		{"nothing new", func(i *unix.TCPInfo) {},
			feedback{mode: NoCongestion, rtt: 80 * time.Millisecond}},
		{"retransmission is loss", func(i *unix.TCPInfo) { i.Bytes_acked += 10000; i.Bytes_retrans += 3000 },
			feedback{nrecd: 10000, nlost: 3000, retrans: 3000, mode: LossFeedback, rtt: 80 * time.Millisecond}},
		{"DSACK'd retransmission is no loss", func(i *unix.TCPInfo) { i.Bytes_retrans += 1000; i.Dsack_dups++ },
			feedback{retrans: 1000, mode: NoCongestion, rtt: 80 * time.Millisecond}},
		{"partly DSACK'd", func(i *unix.TCPInfo) { i.Bytes_retrans += 3000; i.Dsack_dups++ },
			feedback{retrans: 3000, nlost: 2000, mode: LossFeedback, rtt: 80 * time.Millisecond}},
		{"timeout", func(i *unix.TCPInfo) { i.Total_rto++; i.Bytes_retrans += 1000; i.Ca_state = tcpCALoss },
			feedback{retrans: 1000, nlost: 1000, mode: NoFeedback, rtt: 80 * time.Millisecond}},
		{"entering Loss without the counter", func(i *unix.TCPInfo) { i.Ca_state = tcpCALoss },
			feedback{mode: NoFeedback, rtt: 80 * time.Millisecond}},
		{"ECN echo", func(i *unix.TCPInfo) { i.Delivered_ce += 2; i.Bytes_acked += 2000 },
			feedback{nrecd: 2000, mode: ExplicitCongestion, rtt: 80 * time.Millisecond}},
		{"ECN and loss: ECN wins", func(i *unix.TCPInfo) { i.Delivered_ce++; i.Bytes_retrans += 1000 },
			feedback{nlost: 1000, retrans: 1000, mode: ExplicitCongestion, rtt: 80 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := base
			tc.cur(&cur)
			got := feedbackFrom(&base, &cur)
			if got != tc.want {
				t.Errorf("feedbackFrom = %+v, want %+v", got, tc.want)
			}
			if got.report() != (got.nrecd > 0 || got.nlost > 0 || got.mode != NoCongestion) {
				t.Errorf("report() = %v for %+v", got.report(), got)
			}
		})
	}
}

// loopbackPair returns a connected client/server pair on 127.0.0.1.
func loopbackPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}

func TestConnDeliversEverythingAndFeedsTheFlow(t *testing.T) {
	client, server := loopbackPair(t)
	m := NewManager(Config{})
	c, err := NewConn(m, server, ConnConfig{CongestionControl: "cubic", Pacing: true})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 8<<20)
	for i := range payload {
		payload[i] = byte(i * 7 / 3)
	}
	got := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.Copy(h, client)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	// Odd-sized writes cross grant boundaries.
	maxWindow := 0
	for p := payload; len(p) > 0; {
		k := min(len(p), 100_003)
		n, err := c.Write(p[:k])
		if n != k || err != nil {
			t.Fatalf("Write(%d) = %d, %v", k, n, err)
		}
		p = p[k:]
		maxWindow = max(maxWindow, c.Flow().Macroflow().Stats().Window)
	}
	// Everything written is acknowledged eventually, and the poller hands
	// the acks to the macroflow just after counting them; poll both.
	deadline := time.Now().Add(10 * time.Second)
	for (c.Stats().Acked < int64(len(payload)) || c.Flow().Macroflow().Stats().Outstanding != 0) && time.Now().Before(deadline) {
		<-time.After(5 * time.Millisecond)
	}
	st := c.Stats()
	mst := c.Flow().Macroflow().Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if sum := <-got; sum != sha256.Sum256(payload) {
		t.Fatal("the receiver got different bytes")
	}
	if st.Written != int64(len(payload)) || st.Acked != int64(len(payload)) {
		t.Errorf("stats: written %d, acked %d; want %d both", st.Written, st.Acked, len(payload))
	}
	if st.Updates == 0 || st.Polls < st.Updates || st.Err != nil {
		t.Errorf("stats: %d updates, %d polls, err %v", st.Updates, st.Polls, st.Err)
	}
	if st.Pacing == 0 {
		t.Errorf("SO_MAX_PACING_RATE was never set")
	}
	if mst.Outstanding != 0 || mst.SRTT <= 0 {
		t.Errorf("macroflow after the transfer: %+v; want nothing outstanding and an srtt", mst)
	}
	if maxWindow <= m.Config().InitialWindow {
		t.Errorf("the window never grew beyond its initial %d bytes", m.Config().InitialWindow)
	}
}

func TestConnSetsSocketOptions(t *testing.T) {
	_, server := loopbackPair(t)
	c, err := NewConn(NewManager(Config{}), server, ConnConfig{NotSentLowat: 20000, CongestionControl: "reno"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var lowat int
	var cc string
	err = c.setsockopt(func(fd int) (err error) {
		if lowat, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT); err != nil {
			return err
		}
		cc, err = unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if lowat != 20000 || cc != "reno" {
		t.Errorf("TCP_NOTSENT_LOWAT = %d, TCP_CONGESTION = %q; want 20000, reno", lowat, cc)
	}
	if _, err := NewConn(NewManager(Config{}), server, ConnConfig{CongestionControl: "no-such-cc"}); err == nil {
		t.Error("NewConn with an unknown congestion control succeeded")
	}
}

// blockedConn returns a Conn whose macroflow's only window space is held
// by another flow's grant that does not expire during the test.
func blockedConn(t *testing.T) *Conn {
	t.Helper()
	_, server := loopbackPair(t)
	m := NewManager(Config{InitialWindow: 1448, MinWindow: 1448, MaxWindow: 1448, GrantTimeout: time.Hour, StaleTimeout: time.Hour})
	hog, err := m.Open(FlowInfo{Macroflow: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hog.Acquire(context.Background(), 1448); err != nil {
		t.Fatal(err)
	}
	c, err := NewConn(m, server, ConnConfig{Flow: FlowInfo{Macroflow: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnWriteDeadlineBoundsTheWaitForAGrant(t *testing.T) {
	c := blockedConn(t)
	if err := c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Write([]byte("hello"))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = %d, %v; want 0, a deadline error", n, err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error timeout", err)
	}
}

func TestConnCloseUnblocksWrite(t *testing.T) {
	c := blockedConn(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(bytes.Repeat([]byte("x"), 4096))
		errc <- err
	}()
	// Wait until the write is parked on its request, then close.
	deadline := time.Now().Add(5 * time.Second)
	for !c.flowPending() && time.Now().Before(deadline) {
		<-time.After(time.Millisecond)
	}
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

// flowPending reports whether the flow waits for a grant.
func (c *Conn) flowPending() bool {
	mf := c.flow.lock()
	defer mf.mu.Unlock()
	return c.flow.pending > 0
}

// TestPollerOneGoroutinePerManager: the Conns of a manager share one
// poller, which feeds each of them and ends with the last Conn.
func TestPollerOneGoroutinePerManager(t *testing.T) {
	m := NewManager(Config{})
	var conns []*Conn
	var readers []chan int64
	for range 3 {
		client, server := loopbackPair(t)
		c, err := NewConn(m, server, ConnConfig{})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		done := make(chan int64, 1)
		go func() {
			n, _ := io.Copy(io.Discard, client)
			done <- n
		}()
		readers = append(readers, done)
	}
	m.poller.mu.Lock()
	n, running := len(m.poller.conns), m.poller.running
	m.poller.mu.Unlock()
	if n != 3 || !running {
		t.Fatalf("poller has %d conns, running %v; want 3, true", n, running)
	}
	const size = 1 << 20
	for _, c := range conns {
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	// The poller alone reports the last acknowledgements: no Write runs.
	for i, c := range conns {
		deadline := time.Now().Add(10 * time.Second)
		for c.Stats().Received < size && time.Now().Before(deadline) {
			<-time.After(time.Millisecond)
		}
		if got := c.Stats().Received; got != size {
			t.Fatalf("conn %d: %d of %d bytes reported received", i, got, size)
		}
	}
	for i, c := range conns {
		c.Close()
		if got := <-readers[i]; got != size {
			t.Errorf("conn %d: reader got %d bytes, want %d", i, got, size)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.poller.mu.Lock()
		running = m.poller.running
		m.poller.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("poller still running after the last Conn closed")
		}
		<-time.After(time.Millisecond)
	}
}
