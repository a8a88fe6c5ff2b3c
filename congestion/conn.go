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
	// kernel keeps at most about this much unsent data (Write caps each
	// write(2) at it while the kernel has unsent bytes), so the backlog
	// waits in user space, where the scheduler decides which flow goes
	// next. Unsent bytes do not count in the window. 64 KiB, the top of
	// the sensible 16-64 KiB: at 16 KiB a Conn on loopback blocked in
	// write(2) so often that it reached a fifth of the plain writes'
	// throughput at 1.2 times their CPU per byte (BenchmarkWrite).
	DefaultNotSentLowat = 64 << 10
	// DefaultPollInterval is the period of the TCP_INFO poller while the
	// connection has data in flight or waits for a grant.
	DefaultPollInterval = 2 * time.Millisecond
	// DefaultIdlePollInterval bounds the period of the poller of an idle
	// connection (srtt/4 otherwise).
	DefaultIdlePollInterval = 50 * time.Millisecond
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
	// PollInterval is how often TCP_INFO is read while the connection has
	// unacknowledged data or a Write waits (DefaultPollInterval).
	PollInterval time.Duration
	// IdlePollInterval bounds the poll period of an idle connection, which
	// is otherwise srtt/4 (DefaultIdlePollInterval).
	IdlePollInterval time.Duration
	// Pacing sets SO_MAX_PACING_RATE to the flow's share of
	// window/srtt times the pacing gain, so the kernel spreads the flow's
	// share over the RTT instead of bursting it. It is off by default:
	// on the test bed's drop-tail bottleneck, paced Conns lost several
	// times more packets than the ordinary CUBIC flow they competed with
	// and took 15-25% of the link instead of half (EXPERIMENT E1; the
	// pacing timer and TCP Small Queues hold back the packets an ACK
	// would release at once).
	Pacing bool
	// NoPacing turns Pacing off.
	//
	// Deprecated: pacing is off unless Pacing is set.
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
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.IdlePollInterval <= 0 {
		c.IdlePollInterval = DefaultIdlePollInterval
	}
	c.IdlePollInterval = max(c.IdlePollInterval, c.PollInterval)
	if c.Flow.Protocol == "" {
		c.Flow.Protocol = "tcp"
	}
	return c
}

// Conn is a TCP connection whose writes go through a congestion manager
// flow: every Write waits for a grant of the flow's macroflow and sends at
// most that much, and the kernel's TCP_INFO becomes [Flow.Update] calls.
// The kernel's TCP still does the reliable delivery; the manager decides
// how much of the shared window each connection to the same host may have
// in flight.
//
// Feedback per poll (deltas since the last poll):
//   - nrecd: tcpi_bytes_acked, counting each byte the Conn wrote once
//     (see account);
//   - for Query's rate only: tcpi_bytes_acked plus the SACKed segments
//     (see deliveredBytes);
//   - nlost: tcpi_bytes_retrans minus the bytes the receiver reported as
//     duplicates (tcpi_dsack_dups segments of tcpi_snd_mss bytes): a
//     spurious retransmission is no loss; retransmissions made while no
//     ACK came back (tail loss probes) are reported with the next ACK;
//   - mode: NoFeedback when tcpi_total_rto grew or the socket entered the
//     Loss state (a retransmission timeout), ExplicitCongestion when
//     tcpi_delivered_ce grew, LossFeedback when nlost > 0, else
//     NoCongestion;
//   - one LossFeedback or ExplicitCongestion per loss episode (see
//     episode), the later losses of the episode count as bytes lost only;
//   - rtt: tcpi_rtt, the kernel's smoothed RTT, but at least
//     PollInterval: feedback cannot reach the manager faster than it is
//     read;
//   - tcpi_notsent_bytes: bytes written but still queued in the socket are
//     not in flight; they count neither in the window nor in the rate.
//
// tcpi_delivery_rate is not used: on a paced socket it reports the local
// pacing rate, not the path's.
//
// Feedback is read by the Manager's poller (one goroutine for all its
// Conns) every PollInterval while a Conn has unacknowledged data or a
// Write waits for a grant, and every srtt/4 (at most IdlePollInterval)
// when it is idle; and by Write itself after a write(2) when the last
// read is PollInterval old. srtt/4 alone is far too slow for a busy
// connection: a gated flow is not ACK-clocked (its window reopens only
// when the ACKs are read), and behind a full drop-tail queue the slot an
// ACK frees goes to whichever flow sends first. On the 10 Mbit/s, 80
// ms-queue test bed, four gated flows took 12-37% of the link against one
// cubic flow when polled every srtt/4 (16 ms), 21% at 5 ms, and 49% at
// 1-2 ms (EXPERIMENT E1). A getsockopt per poll is cheap next to the data
// path (see BenchmarkWrite).
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

	closeOnce sync.Once
	closeErr  error

	// pollMu serialises TCP_INFO reads (the manager's poller and Write):
	// each poll reports the delta from the one before.
	pollMu   sync.Mutex
	lastPoll time.Time

	mu      sync.Mutex
	last    unix.TCPInfo // at the previous poll
	stats   ConnStats
	pacing  uint64 // bytes/s last set, 0 = unset; written by the poller
	writing bool   // a Write is in progress
	episode episode
	// delivered is the estimate of the bytes that reached the receiver at
	// the previous poll (see deliveredBytes).
	delivered int64
	// heldLost counts retransmitted bytes reported while no ACK came
	// back (a tail loss probe on a silent path): the manager learns of
	// the loss with the next ACK, when feedback really arrives, so a
	// silent path ages the window instead of resetting its clock.
	heldLost int
}

// ConnStats counts what a Conn reported to its flow since it was wrapped.
type ConnStats struct {
	Written  int64         // bytes the application wrote
	Acked    int64         // bytes acknowledged (tcpi_bytes_acked delta)
	Retrans  int64         // bytes retransmitted (tcpi_bytes_retrans delta)
	Lost     int64         // bytes reported lost (retransmitted minus DSACK'd)
	Received int64         // bytes reported received (nrecd)
	Losses   int           // LossFeedback updates (one per loss episode)
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
	c := &Conn{tc: tc, rc: rc, cfg: cfg}
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
	c.delivered = deliveredBytes(&c.last)
	c.flow, err = m.Open(cfg.Flow)
	if err != nil {
		return nil, err
	}
	c.lastPoll = time.Now()
	m.poller.add(c)
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
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
	// A Write on an idle Conn: its feedback is wanted at the busy rate.
	c.flow.m.poller.due(c, time.Now().Add(c.cfg.PollInterval))
	defer func() {
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
	}()
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
		g, err := c.flow.acquire(ctx, len(p), c.pollNow)
		if err != nil {
			return n, c.writeError(err)
		}
		// At most NotSentLowat per write(2) while the kernel holds
		// unsent bytes: it checks the low water mark only before it
		// takes data, so a larger write would park the rest of the
		// grant in the socket, committed to this flow. When the kernel
		// sent everything, the whole grant goes in one write(2).
		k, err := c.tc.Write(p[:min(g.N, len(p), c.writeLimit())])
		c.flow.Notify(k)
		n += k
		p = p[k:]
		c.mu.Lock()
		c.stats.Written += int64(k)
		c.mu.Unlock()
		if err != nil {
			return n, err
		}
		// Feedback right after the write (the socket took the bytes, so
		// the kernel has acked room), at most once per poll interval.
		c.pollIfStale()
	}
	return n, nil
}

// writeLimit returns how much one write(2) may take: NotSentLowat while
// the kernel had unsent bytes at the last poll, else no limit.
func (c *Conn) writeLimit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last.Notsent_bytes > 0 {
		return c.cfg.NotSentLowat
	}
	return int(^uint(0) >> 1)
}

// pollNow polls at once (for acquire: the window is full).
func (c *Conn) pollNow() { c.pollOnce() }

// pollIfStale polls unless the last poll is younger than PollInterval.
func (c *Conn) pollIfStale() {
	c.pollMu.Lock()
	stale := time.Since(c.lastPoll) >= c.cfg.PollInterval
	c.pollMu.Unlock()
	if stale {
		c.pollOnce()
	}
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
		c.flow.m.poller.remove(c)
		c.flow.Close()
		c.closeErr = c.tc.Close()
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

// pollOnce reads TCP_INFO once, reports the deltas to the flow, updates the
// pacing cap and returns when to poll next.
func (c *Conn) pollOnce() time.Duration {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	c.lastPoll = time.Now()
	cur, err := c.tcpInfo()
	c.mu.Lock()
	if err != nil {
		// The socket is closing; Close ends the loop.
		c.stats.Err = err
		c.mu.Unlock()
		return c.cfg.IdlePollInterval
	}
	fb := feedbackFrom(&c.last, &cur)
	fb.nlost, fb.mode = c.holdLoss(&c.last, &cur, fb.nlost, fb.mode)
	if d := deliveredBytes(&cur); d > c.delivered {
		fb.delivered = int(d - c.delivered)
		c.delivered = d
	}
	prevUnsent := c.last.Notsent_bytes
	c.last = cur
	c.stats.Polls++
	c.stats.Acked += int64(fb.nrecd)
	c.stats.Retrans += int64(fb.retrans)
	c.stats.SRTT = fb.rtt
	fb.nrecd, fb.nlost = c.account(fb.nlost)
	fb.mode = c.episode.filter(fb.mode, c.stats.Acked, c.stats.Written)
	if fb.report() {
		c.stats.Updates++
		switch fb.mode {
		case LossFeedback:
			c.stats.Losses++
		case NoFeedback:
			c.stats.Timeouts++
		case ExplicitCongestion:
			c.stats.ECN++
		}
	}
	c.mu.Unlock()
	// Outside c.mu: Update may run subscribers, which may call Stats.
	unsent := int(cur.Notsent_bytes)
	switch {
	case fb.report():
		// The manager sees acks only when the poller reads them, so its
		// feedback loop is never faster than the poll: on a path whose
		// RTT is shorter than MinPollInterval (loopback), an srtt of
		// microseconds would age the window away between two polls.
		c.flow.update(fb.nrecd, fb.nlost, fb.mode, max(fb.rtt, c.cfg.PollInterval), unsent, fb.delivered)
	case fb.delivered > 0:
		// SACKed bytes only (a hole holds the cumulative ACK back): no
		// news for the window, but the rate counts them.
		c.flow.sacked(fb.delivered, unsent)
	case cur.Notsent_bytes != prevUnsent:
		c.flow.setUnsent(unsent)
	}
	if c.cfg.Pacing && !c.cfg.NoPacing {
		c.pace()
	}
	return c.nextPoll(fb.rtt)
}

// holdLoss keeps back the bytes lost while no ACK arrived (see heldLost)
// and returns what to report now. c.mu is held.
func (c *Conn) holdLoss(prev, cur *unix.TCPInfo, nlost int, mode LossMode) (int, LossMode) {
	acked := cur.Bytes_acked != prev.Bytes_acked || cur.Delivered != prev.Delivered
	if !acked && mode != NoFeedback {
		c.heldLost += nlost
		if mode == LossFeedback {
			mode = NoCongestion
		}
		return 0, mode
	}
	nlost += c.heldLost
	c.heldLost = 0
	if nlost > 0 && mode == NoCongestion {
		mode = LossFeedback
	}
	return nlost, mode
}

// account turns the kernel's cumulative acknowledged bytes and this poll's
// lost bytes into what the flow may be told, so that every byte the Conn
// notified is reported at most once, as received or as lost:
//   - a byte is never reported before its Notify: the poller may read the
//     ACK of a write whose Notify has not run yet, and the flow would cap
//     that update and keep the bytes outstanding for ever (they filled
//     the window and stalled a loopback benchmark);
//   - a retransmitted byte reported lost is not reported again as received
//     when its retransmission is acknowledged.
//
// c.mu is held.
func (c *Conn) account(lost int) (nrecd, nlost int) {
	done := c.stats.Received + c.stats.Lost
	avail := c.stats.Written - done
	nrecd = int(min(max(c.stats.Acked-done, 0), avail))
	nlost = int(min(int64(lost), avail-int64(nrecd)))
	c.stats.Received += int64(nrecd)
	c.stats.Lost += int64(nlost)
	return nrecd, nlost
}

// nextPoll returns the time until the next poll: PollInterval while busy,
// srtt/4 within [PollInterval, IdlePollInterval] while idle.
func (c *Conn) nextPoll(srtt time.Duration) time.Duration {
	c.mu.Lock()
	busy := c.writing || c.stats.Written > c.stats.Acked
	c.mu.Unlock()
	if busy {
		return c.cfg.PollInterval
	}
	return min(max(srtt/4, c.cfg.PollInterval), c.cfg.IdlePollInterval)
}

// pace sets SO_MAX_PACING_RATE to the flow's share of window/srtt times
// the pacing gain, when it moved by more than 1/8 since it was last set.
// Only the poller calls it.
func (c *Conn) pace() {
	rate, slowStart := c.flow.windowRate()
	if rate <= 0 {
		return
	}
	gain := DefaultPacingGain
	if slowStart {
		gain = DefaultPacingGainSlowStart
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

// episode keeps one congestion signal per loss episode of a connection,
// as TCP reduces its window once per window of data (RFC 5681, RFC 6582's
// "recover"): after a LossFeedback or ExplicitCongestion, further losses
// and marks are reported as bytes lost but with NoCongestion until every
// byte written before the signal has been acknowledged. Without this, the
// retransmissions of one overflow of the bottleneck, spread over more than
// an srtt, halved the macroflow window several times, while an ordinary
// flow reduced its window once (EXPERIMENT E1).
type episode struct {
	active  bool
	recover int64 // bytes written when the signal was sent
}

// filter returns the mode to report, given the bytes acked and written so
// far. NoFeedback (a timeout) always passes and ends the episode.
func (e *episode) filter(mode LossMode, acked, written int64) LossMode {
	if e.active && acked >= e.recover {
		e.active = false
	}
	switch mode {
	case LossFeedback, ExplicitCongestion:
		if e.active {
			return NoCongestion
		}
		e.active, e.recover = true, written
	case NoFeedback:
		e.active = false
	}
	return mode
}

// deliveredBytes estimates the bytes of the connection that reached the
// receiver: the cumulatively acknowledged bytes plus the segments the
// receiver SACKed above a hole (tcpi_sacked, of tcpi_snd_mss bytes each:
// a bulk sender's segments are full-sized). Query's rate counts these,
// not the cumulative ACKs alone: during a loss recovery the cumulative
// ACK stops while the path still delivers, then jumps when the
// retransmission fills the hole, and a rate measured over an srtt would
// dip, then spike, though the bottleneck delivered at an even rate
// (EXPERIMENT E5). This is the kernel's own tcpi_delivered in bytes; the
// window keeps counting cumulative ACKs (nrecd), which never overcount.
func deliveredBytes(info *unix.TCPInfo) int64 {
	return int64(info.Bytes_acked) + int64(info.Sacked)*int64(info.Snd_mss)
}

// feedback is what one poll reports.
type feedback struct {
	// delivered is the growth of deliveredBytes (for the rate only).
	delivered             int
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

func (c *Conn) tcpInfo() (unix.TCPInfo, error) { return tcpInfo(c.rc) }

// tcpInfo reads TCP_INFO of the socket behind rc.
func tcpInfo(rc syscall.RawConn) (unix.TCPInfo, error) {
	var info *unix.TCPInfo
	err := control(rc, func(fd int) (err error) {
		info, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err
	})
	if err != nil {
		return unix.TCPInfo{}, fmt.Errorf("TCP_INFO: %w", err)
	}
	return *info, nil
}

// setsockopt runs fn on the socket's descriptor.
func (c *Conn) setsockopt(fn func(fd int) error) error { return control(c.rc, fn) }

// control runs fn on the descriptor behind rc.
func control(rc syscall.RawConn, fn func(fd int) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
