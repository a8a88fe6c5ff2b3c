package congestion

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for the zero fields of [ConnConfig].
const (
	// DefaultNotSentLowat is the TCP_NOTSENT_LOWAT of a Conn's socket: the
	// kernel keeps at most this much unsent data, so the backlog waits in
	// user space, where the scheduler decides which flow goes next.
	DefaultNotSentLowat = 32 << 10
	// DefaultMinPollInterval and DefaultMaxPollInterval bound the period
	// of the TCP_INFO poller (srtt/4).
	DefaultMinPollInterval = 2 * time.Millisecond
	DefaultMaxPollInterval = 100 * time.Millisecond
	// DefaultPacingGainSlowStart and DefaultPacingGain multiply a flow's
	// share of window/srtt to give its SO_MAX_PACING_RATE, below and above
	// ssthresh (Linux's own tcp_pacing_ss_ratio and tcp_pacing_ca_ratio):
	// the cap must leave room to grow, or the rate could never rise.
	DefaultPacingGainSlowStart = 2.0
	DefaultPacingGain          = 1.2
)

// tcpCALoss is Linux's TCP_CA_Loss state (include/net/tcp.h): the
// retransmission timer fired.
const tcpCALoss = 4

// ConnConfig configures a [Conn]. The zero value is a valid configuration.
type ConnConfig struct {
	// Flow describes the flow to the manager. Zero Src and Dst are taken
	// from the connection's local and remote addresses, and Protocol
	// becomes "tcp".
	Flow FlowInfo
	// NotSentLowat is the socket's TCP_NOTSENT_LOWAT in bytes
	// (DefaultNotSentLowat; 16-64 KB is sensible).
	NotSentLowat int
	// MinPollInterval and MaxPollInterval bound how often TCP_INFO is
	// read; the poller runs every srtt/4 within these bounds.
	MinPollInterval, MaxPollInterval time.Duration
	// NoPacing leaves SO_MAX_PACING_RATE alone. By default it is set to
	// the flow's share of window/srtt times the pacing gain, so the
	// kernel spreads the flow's share over the RTT instead of bursting it.
	NoPacing bool
	// CongestionControl, when set, is written to TCP_CONGESTION ("cubic",
	// "reno"): the kernel's own per-connection controller still runs under
	// the manager's window.
	CongestionControl string
}

func (c ConnConfig) withDefaults() ConnConfig {
	if c.NotSentLowat <= 0 {
		c.NotSentLowat = DefaultNotSentLowat
	}
	if c.MinPollInterval <= 0 {
		c.MinPollInterval = DefaultMinPollInterval
	}
	if c.MaxPollInterval <= 0 {
		c.MaxPollInterval = DefaultMaxPollInterval
	}
	c.MaxPollInterval = max(c.MaxPollInterval, c.MinPollInterval)
	if c.Flow.Protocol == "" {
		c.Flow.Protocol = "tcp"
	}
	return c
}

// Conn is a TCP connection whose writes go through a congestion manager
// flow: every Write waits for a grant of the flow's macroflow and sends at
// most that much, and a poller goroutine turns the kernel's TCP_INFO into
// [Flow.Update] calls. The kernel's TCP still does the reliable delivery;
// the manager decides how much of the shared window each connection to the
// same host may have in flight.
//
// Feedback per poll (deltas since the last poll):
//   - nrecd: tcpi_bytes_acked;
//   - nlost: tcpi_bytes_retrans minus the bytes the receiver reported as
//     duplicates (tcpi_dsack_dups segments of tcpi_snd_mss bytes): a
//     spurious retransmission is no loss;
//   - mode: NoFeedback when tcpi_total_rto grew or the socket entered the
//     Loss state (a retransmission timeout), ExplicitCongestion when
//     tcpi_delivered_ce grew, LossFeedback when nlost > 0, else
//     NoCongestion;
//   - rtt: tcpi_rtt, the kernel's smoothed RTT, but at least
//     MinPollInterval: feedback cannot reach the manager faster than the
//     poller reads it.
//
// tcpi_delivery_rate is not used: on a paced socket it reports the local
// pacing rate, not the path's.
//
// The poller, one goroutine per Conn, reads TCP_INFO every srtt/4 (bounded
// by MinPollInterval and MaxPollInterval): often enough that the window
// reopens about four times per RTT, rarely enough that one getsockopt per
// poll costs nothing next to the data path.
//
// Read, deadlines and addresses go straight to the TCP connection. Writes
// are serialised; a write deadline also bounds the wait for a grant.
type Conn struct {
	tc   *net.TCPConn
	rc   syscall.RawConn
	flow *Flow
	cfg  ConnConfig

	writeMu  sync.Mutex
	dlMu     sync.Mutex
	deadline time.Time // write deadline

	done      chan struct{}
	pollDone  chan struct{}
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	last   unix.TCPInfo // at the previous poll
	stats  ConnStats
	pacing uint64 // bytes/s last set, 0 = unset; written by the poller
}

// ConnStats counts what a Conn reported to its flow since it was wrapped.
type ConnStats struct {
	Written  int64         // bytes the application wrote
	Acked    int64         // nrecd reported (tcpi_bytes_acked delta)
	Retrans  int64         // bytes retransmitted (tcpi_bytes_retrans delta)
	Lost     int64         // nlost reported (retransmitted minus DSACK'd)
	Timeouts int           // NoFeedback updates (retransmission timeouts)
	ECN      int           // ExplicitCongestion updates
	Updates  int           // Update calls
	Polls    int           // TCP_INFO reads
	SRTT     time.Duration // tcpi_rtt at the last poll
	Pacing   uint64        // SO_MAX_PACING_RATE now (bytes/s), 0 if not set
	Err      error         // last failed TCP_INFO read or setsockopt, if any
}

// NewConn opens a flow of m for tc and returns the gated connection. It
// sets TCP_NOTSENT_LOWAT (and TCP_CONGESTION when configured) on the
// socket and starts the poller. The Conn owns tc: Close closes both.
func NewConn(m *Manager, tc *net.TCPConn, cfg ConnConfig) (*Conn, error) {
	cfg = cfg.withDefaults()
	if !cfg.Flow.Src.IsValid() {
		cfg.Flow.Src = addrPort(tc.LocalAddr())
	}
	if !cfg.Flow.Dst.IsValid() {
		cfg.Flow.Dst = addrPort(tc.RemoteAddr())
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("congestion: conn to %v: %w", tc.RemoteAddr(), err)
	}
	c := &Conn{tc: tc, rc: rc, cfg: cfg, done: make(chan struct{}), pollDone: make(chan struct{})}
	if err := c.setsockopt(func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, cfg.NotSentLowat); err != nil {
			return fmt.Errorf("TCP_NOTSENT_LOWAT %d: %w", cfg.NotSentLowat, err)
		}
		if cfg.CongestionControl != "" {
			if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, cfg.CongestionControl); err != nil {
				return fmt.Errorf("TCP_CONGESTION %q: %w", cfg.CongestionControl, err)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("congestion: conn to %v: %w", tc.RemoteAddr(), err)
	}
	// The baseline: whatever the socket did before it was wrapped (the
	// SYN, earlier writes) is not this flow's feedback.
	if c.last, err = c.tcpInfo(); err != nil {
		return nil, fmt.Errorf("congestion: conn to %v: %w", tc.RemoteAddr(), err)
	}
	c.flow, err = m.Open(cfg.Flow)
	if err != nil {
		return nil, err
	}
	go c.poll()
	return c, nil
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// Flow returns the manager's flow of the connection (for Query and
// Subscribe).
func (c *Conn) Flow() *Flow { return c.flow }

// TCPConn returns the wrapped connection. Writing to it directly bypasses
// the manager.
func (c *Conn) TCPConn() *net.TCPConn { return c.tc }

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Write sends p through the manager: it waits for a grant, writes at most
// the granted bytes to the socket, notifies the flow, and repeats until p
// is written, the write deadline passes or the connection closes.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ctx := context.Background()
	c.dlMu.Lock()
	dl := c.deadline
	c.dlMu.Unlock()
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	n := 0
	for len(p) > 0 {
		g, err := c.flow.Acquire(ctx, len(p))
		if err != nil {
			return n, c.writeError(err)
		}
		k, err := c.tc.Write(p[:min(g.N, len(p))])
		c.flow.Notify(k)
		n += k
		p = p[k:]
		c.mu.Lock()
		c.stats.Written += int64(k)
		c.mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// writeError maps a failed Acquire to the error net.Conn users expect.
func (c *Conn) writeError(err error) error {
	op := &net.OpError{Op: "write", Net: "tcp", Source: c.tc.LocalAddr(), Addr: c.tc.RemoteAddr()}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		op.Err = os.ErrDeadlineExceeded
	case errors.Is(err, ErrClosed):
		op.Err = net.ErrClosed
	default:
		op.Err = err
	}
	return op
}

// Read reads from the connection.
func (c *Conn) Read(p []byte) (int, error) { return c.tc.Read(p) }

// Close stops the poller, closes the flow (its window share returns to the
// macroflow) and closes the connection. A blocked Write returns.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.flow.Close()
		c.closeErr = c.tc.Close()
		<-c.pollDone
	})
	return c.closeErr
}

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.tc.LocalAddr() }

// RemoteAddr returns the remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.setWriteDeadline(t)
	return c.tc.SetDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline; it bounds the wait for a grant
// too (only for Writes that start after it is set).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.setWriteDeadline(t)
	return c.tc.SetWriteDeadline(t)
}

func (c *Conn) setWriteDeadline(t time.Time) {
	c.dlMu.Lock()
	c.deadline = t
	c.dlMu.Unlock()
}

var _ net.Conn = (*Conn)(nil)

// poll reads TCP_INFO every srtt/4 and feeds the flow until Close.
func (c *Conn) poll() {
	defer close(c.pollDone)
	t := time.NewTimer(c.cfg.MinPollInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		t.Reset(c.pollOnce())
	}
}

// pollOnce reads TCP_INFO once, reports the deltas to the flow, updates the
// pacing cap and returns when to poll next.
func (c *Conn) pollOnce() time.Duration {
	cur, err := c.tcpInfo()
	c.mu.Lock()
	if err != nil {
		// The socket is closing; Close ends the loop.
		c.stats.Err = err
		c.mu.Unlock()
		return c.cfg.MaxPollInterval
	}
	fb := feedbackFrom(&c.last, &cur)
	c.last = cur
	c.stats.Polls++
	c.stats.Acked += int64(fb.nrecd)
	c.stats.Retrans += int64(fb.retrans)
	c.stats.Lost += int64(fb.nlost)
	c.stats.SRTT = fb.rtt
	if fb.report() {
		c.stats.Updates++
		switch fb.mode {
		case NoFeedback:
			c.stats.Timeouts++
		case ExplicitCongestion:
			c.stats.ECN++
		}
	}
	c.mu.Unlock()
	// Outside c.mu: Update may run subscribers, which may call Stats.
	if fb.report() {
		// The manager sees acks only when the poller reads them, so its
		// feedback loop is never faster than the poll: on a path whose
		// RTT is shorter than MinPollInterval (loopback), an srtt of
		// microseconds would age the window away between two polls.
		c.flow.Update(fb.nrecd, fb.nlost, fb.mode, max(fb.rtt, c.cfg.MinPollInterval))
	}
	if !c.cfg.NoPacing {
		c.pace()
	}
	return min(max(fb.rtt/4, c.cfg.MinPollInterval), c.cfg.MaxPollInterval)
}

// pace sets SO_MAX_PACING_RATE to the flow's share of window/srtt times
// the pacing gain, when it moved by more than 1/8 since it was last set.
// Only the poller calls it.
func (c *Conn) pace() {
	rate, _, _, ok := c.flow.Query()
	if !ok || rate <= 0 {
		return
	}
	gain := DefaultPacingGain
	if mf := c.flow.Macroflow(); mf != nil {
		if st := mf.Stats(); st.Window < st.SSThresh {
			gain = DefaultPacingGainSlowStart
		}
	}
	want := uint64(rate * gain)
	if c.pacing != 0 && want > c.pacing-c.pacing/8 && want < c.pacing+c.pacing/8 {
		return
	}
	err := c.setsockopt(func(fd int) error {
		// The option takes an unsigned long (bytes/s); SetsockoptUint64
		// passes 8 bytes, which the kernel reads whole on 64-bit hosts.
		return unix.SetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, want)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.stats.Err = err
		return
	}
	c.pacing = want
	c.stats.Pacing = want
}

// feedback is what one poll reports.
type feedback struct {
	nrecd, nlost, retrans int
	mode                  LossMode
	rtt                   time.Duration
}

// report tells whether the poll carries anything worth an Update.
func (fb feedback) report() bool {
	return fb.nrecd > 0 || fb.nlost > 0 || fb.mode != NoCongestion
}

// feedbackFrom turns two TCP_INFO snapshots into one Update.
func feedbackFrom(prev, cur *unix.TCPInfo) feedback {
	fb := feedback{
		nrecd:   int(cur.Bytes_acked - prev.Bytes_acked),
		retrans: int(cur.Bytes_retrans - prev.Bytes_retrans),
		rtt:     time.Duration(cur.Rtt) * time.Microsecond,
	}
	dsack := int(cur.Dsack_dups-prev.Dsack_dups) * int(cur.Snd_mss)
	fb.nlost = max(fb.retrans-dsack, 0)
	switch {
	case cur.Total_rto != prev.Total_rto || (cur.Ca_state == tcpCALoss && prev.Ca_state != tcpCALoss):
		fb.mode = NoFeedback
	case cur.Delivered_ce != prev.Delivered_ce:
		fb.mode = ExplicitCongestion
	case fb.nlost > 0:
		fb.mode = LossFeedback
	}
	return fb
}

func (c *Conn) tcpInfo() (unix.TCPInfo, error) {
	var info *unix.TCPInfo
	err := c.setsockopt(func(fd int) (err error) {
		info, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err
	})
	if err != nil {
		return unix.TCPInfo{}, fmt.Errorf("TCP_INFO: %w", err)
	}
	return *info, nil
}

// setsockopt runs fn on the socket's descriptor.
func (c *Conn) setsockopt(fn func(fd int) error) error {
	var ferr error
	if err := c.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
