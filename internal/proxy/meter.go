package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Defaults of Meter.
const (
	// DefaultReportInterval is the period of the interim reports of a
	// connection still open (a long download, a keep-alive connection
	// serving many responses).
	DefaultReportInterval = time.Second
	// DefaultMinReportBytes is the least acknowledged payload a report
	// rests on: the throughput of a few kilobytes is that of TCP's slow
	// start, not of the path. Smaller periods carry over to the next.
	DefaultMinReportBytes = 16 << 10
	// DefaultMaxHosts bounds the client hosts whose activity the meter
	// keeps (HostActivity); a host with no open connection is forgotten
	// after DefaultHostTTL, the oldest first when the table is full.
	DefaultMaxHosts = 10000
	// DefaultHostTTL is how long the activity of a host with no open
	// connection is kept.
	DefaultHostTTL = 10 * time.Minute
)

// ReportSink takes performance reports: every spand.Store (the
// in-process *spand.MemoryStore) implements it, and ReporterSink sends
// them to a spand daemon over HTTP.
type ReportSink interface {
	Add(ctx context.Context, reports []spand.Report) error
}

// ReporterSink queues reports in a spand.Reporter, which sends them in
// the background (its Run must be running); Add never waits on the
// network.
type ReporterSink struct{ R *spand.Reporter }

// Add implements ReportSink; it fails when the reporter's queue is full
// or a report is invalid.
func (s ReporterSink) Add(_ context.Context, reports []spand.Report) error {
	for i := range reports {
		if !s.R.Add(reports[i]) {
			return fmt.Errorf("spand reporter: report %d of %d not queued (invalid or queue full)", i+1, len(reports))
		}
	}
	return nil
}

// Meter makes the proxy a SPAND "modified client": it measures what each
// accepted client connection delivered, from the kernel's TCP_INFO, and
// sends a performance report per connection (when it closes) and per
// ReportInterval while it stays open. Reports are keyed by the client as
// the local host (spand.KindLocal, the client's last mile) with the
// proxy's own address as the remote one, in class web. Per report:
//
//   - Bytes: payload acknowledged by the client (tcpi_bytes_acked);
//   - Duration: the time the socket had data to deliver (tcpi_busy_time),
//     so idle keep-alive time does not count as slowness;
//   - Throughput: Bytes / Duration;
//   - RTT: tcpi_min_rtt and tcpi_rtt (the kernel's smoothed RTT);
//   - Loss: retransmitted over sent data segments.
//
// It also keeps what was written to each host and when (Activity), which
// the congestion manager's predictor (internal/adapt.CM) needs. The zero
// value is not usable: set Sink. Safe for concurrent use.
type Meter struct {
	// Sink receives the reports (required).
	Sink ReportSink
	// Class is the application class of the reports; "" means
	// spand.ClassWeb.
	Class spand.Class
	// ReportInterval, MinReportBytes, MaxHosts: zero means the Default...
	// consts.
	ReportInterval time.Duration
	MinReportBytes int64
	MaxHosts       int
	// Logger receives failures of the sink (nil: slog.Default()).
	Logger *slog.Logger

	mu    sync.Mutex
	conns map[*meteredConn]struct{}
	hosts map[netip.Addr]*hostActivity
	own   map[netip.Addr]struct{} // the proxy's addresses clients reached

	reports, failed atomic.Int64
}

type hostActivity struct {
	written     atomic.Int64
	last        atomic.Int64  // unix ns of the end of the last write
	delivered   atomic.Uint64 // math.Float64bits of the latest report's throughput
	deliveredAt atomic.Int64  // unix ns of that report
	open        int           // open connections, under Meter.mu
	closed      time.Time     // when the last one closed, under Meter.mu
}

// Activity implements internal/adapt.HostActivity: the bytes written to
// addr's connections, when the last write ended, and the throughput of
// the host's latest report.
func (m *Meter) Activity(addr netip.Addr) (adapt.Host, bool) {
	m.mu.Lock()
	h := m.hosts[addr.Unmap()]
	m.mu.Unlock()
	if h == nil {
		return adapt.Host{}, false
	}
	return adapt.Host{
		Written:     h.written.Load(),
		LastWrite:   time.Unix(0, h.last.Load()),
		Delivered:   math.Float64frombits(h.delivered.Load()),
		DeliveredAt: time.Unix(0, h.deliveredAt.Load()),
	}, true
}

// Own reports whether p holds an address of the proxy that a client
// connected to (the remote address of the reports).
func (m *Meter) Own(p netip.Prefix) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a := range m.own {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Stats returns the number of reports sent to the sink and of those it
// refused.
func (m *Meter) Stats() (reports, failed int64) { return m.reports.Load(), m.failed.Load() }

// Run sends the interim reports of open connections every
// ReportInterval until ctx is done.
func (m *Meter) Run(ctx context.Context) {
	t := time.NewTicker(m.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.tick()
		}
	}
}

func (m *Meter) tick() {
	m.mu.Lock()
	conns := make([]*meteredConn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	now := time.Now()
	for a, h := range m.hosts {
		if h.open == 0 && now.Sub(h.closed) > DefaultHostTTL {
			delete(m.hosts, a)
		}
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.report(false)
	}
}

func (m *Meter) interval() time.Duration {
	if m.ReportInterval > 0 {
		return m.ReportInterval
	}
	return DefaultReportInterval
}

func (m *Meter) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// Wrap meters conn, which serves the client of tc (tc itself, or a
// congestion.Conn around it). Closing the returned connection sends its
// last report. A connection whose addresses are not IP addresses is
// returned as it is.
func (m *Meter) Wrap(conn net.Conn, tc *net.TCPConn) net.Conn {
	local, ok1 := tcpAddr(tc.LocalAddr())
	remote, ok2 := tcpAddr(tc.RemoteAddr())
	if !ok1 || !ok2 {
		return conn
	}
	c := &meteredConn{Conn: conn, tc: tc, m: m, local: local, remote: remote, start: time.Now()}
	c.last, _ = c.tcpInfo() // the handshake is not the response's delivery
	maxHosts := m.MaxHosts
	if maxHosts <= 0 {
		maxHosts = DefaultMaxHosts
	}
	m.mu.Lock()
	if m.conns == nil {
		m.conns = make(map[*meteredConn]struct{})
		m.hosts = make(map[netip.Addr]*hostActivity)
		m.own = make(map[netip.Addr]struct{})
	}
	m.own[local] = struct{}{}
	m.conns[c] = struct{}{}
	h := m.hosts[remote]
	if h == nil {
		if len(m.hosts) >= maxHosts {
			m.evictLocked()
		}
		h = &hostActivity{}
		m.hosts[remote] = h
	}
	h.open++
	c.host = h
	m.mu.Unlock()
	return c
}

// evictLocked drops the host without open connections that closed
// first; if every host has open connections, the table grows past
// MaxHosts until some close (each holds at least one socket).
func (m *Meter) evictLocked() {
	var oldest netip.Addr
	var at time.Time
	for a, h := range m.hosts {
		if h.open == 0 && (at.IsZero() || h.closed.Before(at)) {
			oldest, at = a, h.closed
		}
	}
	if oldest.IsValid() {
		delete(m.hosts, oldest)
	}
}

func (m *Meter) closed(c *meteredConn) {
	m.mu.Lock()
	delete(m.conns, c)
	c.host.open--
	c.host.closed = time.Now()
	m.mu.Unlock()
}

func tcpAddr(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ap := ta.AddrPort()
	return ap.Addr().Unmap(), ap.Addr().IsValid()
}

// tcpSnap is the part of TCP_INFO a report is the difference of.
type tcpSnap struct {
	acked   uint64 // tcpi_bytes_acked
	busy    uint64 // tcpi_busy_time, µs
	segsOut uint32 // tcpi_data_segs_out
	retrans uint32 // tcpi_total_retrans
	rtt     uint32 // tcpi_rtt, µs
	minRTT  uint32 // tcpi_min_rtt, µs
}

// meteredConn is a client connection of the proxy under a Meter. Its
// Write records the host's activity; CloseWrite and CloseRead let
// goproxy half-close a CONNECT tunnel on the socket once its copies end.
type meteredConn struct {
	net.Conn
	tc            *net.TCPConn
	m             *Meter
	host          *hostActivity
	local, remote netip.Addr
	start         time.Time

	mu     sync.Mutex // serialises reports; guards last and done
	last   tcpSnap
	done   bool
	closeO sync.Once
	err    error
}

func (c *meteredConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.host.written.Add(int64(n))
		c.host.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// Close sends the connection's last report and closes it.
func (c *meteredConn) Close() error {
	c.closeO.Do(func() {
		c.report(true)
		c.m.closed(c)
		c.err = c.Conn.Close()
	})
	return c.err
}

// CloseWrite half-closes the socket (after the last Write returned).
func (c *meteredConn) CloseWrite() error { return c.tc.CloseWrite() }

// CloseRead shuts down the reading side of the socket.
func (c *meteredConn) CloseRead() error { return c.tc.CloseRead() }

func (c *meteredConn) tcpInfo() (tcpSnap, error) {
	rc, err := c.tc.SyscallConn()
	if err != nil {
		return tcpSnap{}, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return tcpSnap{}, err
	}
	if ierr != nil {
		return tcpSnap{}, ierr
	}
	return tcpSnap{
		acked: info.Bytes_acked, busy: info.Busy_time, segsOut: info.Data_segs_out,
		retrans: info.Total_retrans, rtt: info.Rtt, minRTT: info.Min_rtt,
	}, nil
}

// report sends what the connection delivered since its last report, if
// it is at least MinReportBytes; otherwise the period carries over.
func (c *meteredConn) report(final bool) {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	c.done = final
	now, err := c.tcpInfo()
	if err != nil {
		c.mu.Unlock()
		return // closed under us: the final report was made or cannot be
	}
	r, ok := c.m.reportOf(c.local, c.remote, c.last, now)
	if ok {
		c.last = now
	}
	r.Periodic = !final
	c.mu.Unlock()
	if !ok {
		return
	}
	if err := c.m.Sink.Add(context.Background(), []spand.Report{r}); err != nil {
		c.m.failed.Add(1)
		c.m.logger().Warn("proxy: performance report not taken", "client", c.remote.String(), "err", err)
		return
	}
	c.m.reports.Add(1)
	c.host.delivered.Store(math.Float64bits(r.Throughput))
	c.host.deliveredAt.Store(time.Now().UnixNano())
}

// reportOf turns the difference of two TCP_INFO snapshots of a
// connection from local (the proxy) to remote (the client) into a
// report. ok is false when it rests on fewer than MinReportBytes or is
// invalid.
func (m *Meter) reportOf(local, remote netip.Addr, from, to tcpSnap) (spand.Report, bool) {
	minBytes := m.MinReportBytes
	if minBytes <= 0 {
		minBytes = DefaultMinReportBytes
	}
	bytes := int64(to.acked - from.acked)
	if to.acked < from.acked || bytes < minBytes {
		return spand.Report{}, false
	}
	// busy_time counts in jiffies: a transfer shorter than one may read
	// 0; it took at least one RTT.
	busy := time.Duration(to.busy-from.busy) * time.Microsecond
	busy = max(busy, time.Duration(to.rtt)*time.Microsecond, time.Millisecond)
	class := m.Class
	if class == "" {
		class = spand.ClassWeb
	}
	ms := func(us uint32) float64 { return float64(us) / 1000 }
	r := spand.Report{
		Local: remote, Remote: local, Class: class,
		Start:      time.Now().Add(-busy),
		Duration:   busy.Seconds(),
		Bytes:      bytes,
		Throughput: float64(bytes) / busy.Seconds(),
		RTTMin:     ms(to.minRTT),
		RTTMedian:  max(ms(to.rtt), ms(to.minRTT)),
	}
	if segs := to.segsOut - from.segsOut; segs > 0 && to.retrans >= from.retrans {
		r.Loss = min(1, float64(to.retrans-from.retrans)/float64(segs))
	}
	return r, r.Validate() == nil
}
