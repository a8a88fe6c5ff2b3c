package icapd

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultAllow is the client allow-list when none is given: loopback only.
var DefaultAllow = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// ParseAllow parses a comma-separated list of CIDRs or bare addresses
// (a bare address allows that host only).
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("allow-list entry %q: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("allow-list entry %q: not a CIDR or an address: %w", f, err)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("allow-list %q is empty", s)
	}
	return out, nil
}

// allowed reports whether addr (an IPv4-mapped IPv6 address counts as IPv4)
// falls in one of the prefixes.
func allowed(prefixes []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// refusalLogInterval bounds the refusal log to one line per interval, so
// that a flood of refused connections cannot flood the log; the line says
// how many were refused since the last one (all are counted in metrics).
const refusalLogInterval = time.Second

// allowListener accepts only connections whose remote address is in allow;
// it closes the others at once, logs them and counts them. It sits under
// TLS, so a refused client costs no handshake.
type allowListener struct {
	net.Listener
	allow   []netip.Prefix
	log     *slog.Logger
	refused func()

	// logEvery is refusalLogInterval, or longer in tests.
	logEvery time.Duration
	// Accept runs on one goroutine: no locking needed.
	lastLog    time.Time
	suppressed int
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err == nil && allowed(l.allow, ap.Addr()) {
			return c, nil
		}
		every := l.logEvery
		if every == 0 {
			every = refusalLogInterval
		}
		if now := time.Now(); now.Sub(l.lastLog) >= every {
			l.log.Warn("refused ICAP client not in allow-list", "remote", c.RemoteAddr().String(), "listen", l.Addr().String(),
				"also_refused_since_last_line", l.suppressed)
			l.lastLog, l.suppressed = now, 0
		} else {
			l.suppressed++
		}
		if l.refused != nil {
			l.refused()
		}
		c.Close()
	}
}

// isLoopbackListen reports whether a listen address binds loopback only.
// An empty host or an unspecified address (":1344", "0.0.0.0:1344") binds
// every interface.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
