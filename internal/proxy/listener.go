package proxy

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// DefaultCongestionControl is the kernel congestion control pinned on
// every client socket the congestion manager gates (TCP_CONGESTION): the
// manager's AIMD window sits on top of a loss-based kernel controller,
// whatever the system default (often BBR) is.
const DefaultCongestionControl = "cubic"

// Listener is the proxy's listener: every TCP connection it accepts is
// wrapped in a congestion.Conn of Manager, so that the responses (and
// the CONNECT tunnels, whose hijacked connection is this one) are written
// under the window of the client host's macroflow, and metered by Meter.
// A nil Manager or Meter skips that part. A connection the manager
// refuses (too many macroflows or flows, a kernel without the congestion
// control asked for) is served ungated, counted (Ungated) and logged, at
// most once per DefaultWarnInterval.
type Listener struct {
	net.Listener
	// Manager gates the writes; nil serves connections as they are.
	Manager *congestion.Manager
	// Conn configures each congestion.Conn; an empty CongestionControl
	// means DefaultCongestionControl.
	Conn congestion.ConnConfig
	// Meter measures and reports each connection; nil: no reports.
	Meter *Meter
	// Logger receives connections served ungated (nil: slog.Default()).
	Logger *slog.Logger

	ungated  atomic.Int64
	lastWarn atomic.Int64 // unix ns
}

// DefaultWarnInterval is the least time between two log lines about
// connections served without the congestion manager.
const DefaultWarnInterval = time.Minute

// Ungated returns how many connections were served without the
// congestion manager because it refused them.
func (l *Listener) Ungated() int64 { return l.ungated.Load() }

// Accept waits for the next connection and wraps it.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	var conn net.Conn = tc
	if l.Manager != nil {
		cfg := l.Conn
		if cfg.CongestionControl == "" {
			cfg.CongestionControl = DefaultCongestionControl
		}
		// One macroflow per client host, however it reached a
		// dual-stack listener.
		if ap := tc.RemoteAddr().(*net.TCPAddr).AddrPort(); !cfg.Flow.Dst.IsValid() {
			cfg.Flow.Dst = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		cc, err := congestion.NewConn(l.Manager, tc, cfg)
		if err != nil {
			n := l.ungated.Add(1)
			now, last := time.Now().UnixNano(), l.lastWarn.Load()
			if now-last >= int64(DefaultWarnInterval) && l.lastWarn.CompareAndSwap(last, now) {
				l.logger().Warn("proxy: client connection served without the congestion manager", "client", tc.RemoteAddr().String(), "err", err, "ungated", n)
			}
		} else {
			conn = cc
		}
	}
	if l.Meter != nil {
		conn = l.Meter.Wrap(conn, tc)
	}
	return conn, nil
}

func (l *Listener) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}
