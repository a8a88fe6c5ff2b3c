package spand

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// Class is an application class. SPAND keeps the performance of one path
// apart per class because the same path performs differently for a bulk
// transfer, a short request/response exchange and an interactive session.
type Class string

// The application classes. The capture side (package track) recognises them
// by ports and behaviour; reports from clients name them directly.
const (
	ClassBulk        Class = "bulk"        // long one-way transfers
	ClassWeb         Class = "web"         // request/response (HTTP and the like)
	ClassInteractive Class = "interactive" // small keystroke-sized exchanges (ssh, telnet)
	ClassRealtime    Class = "realtime"    // UDP media and games
)

// Classes lists every valid class in a fixed order.
var Classes = []Class{ClassBulk, ClassWeb, ClassInteractive, ClassRealtime}

// Valid reports whether c is one of the known classes.
func (c Class) Valid() bool {
	switch c {
	case ClassBulk, ClassWeb, ClassInteractive, ClassRealtime:
		return true
	}
	return false
}

// ParseClass returns the class named s, or an error naming the valid ones.
func ParseClass(s string) (Class, error) {
	c := Class(s)
	if !c.Valid() {
		return "", fmt.Errorf("spand: unknown class %q (want bulk, web, interactive or realtime)", s)
	}
	return c, nil
}

// Report is one performance report: what one connection (or one period of a
// long connection) achieved between a host on the LAN and a remote host.
//
// Throughput and Bytes describe the direction that carried more data, which
// for the clients of an edge proxy is almost always the download; Upload is
// set when it was the other way.
type Report struct {
	Local  netip.Addr `json:"local"`  // the LAN side
	Remote netip.Addr `json:"remote"` // the far side
	Class  Class      `json:"class"`

	Start    time.Time `json:"start"`      // first packet of the connection or period
	Duration float64   `json:"duration_s"` // seconds, first to last packet

	Bytes      int64   `json:"bytes"`      // unique payload bytes in the main direction
	Throughput float64 `json:"throughput"` // bytes/s: Bytes / Duration (tcptrace definition)
	Upload     bool    `json:"upload,omitempty"`

	RTTMin    float64 `json:"rtt_min_ms,omitempty"`    // milliseconds, 0 = unknown
	RTTMedian float64 `json:"rtt_median_ms,omitempty"` // milliseconds, 0 = unknown
	Loss      float64 `json:"loss,omitempty"`          // retransmitted / sent segments, 0..1

	ResponseTime float64 `json:"response_time_ms,omitempty"` // request's last byte to response's first, ms
	ResponseRate float64 `json:"response_rate,omitempty"`    // bytes/s of the response body alone

	// HostRate is the bytes/s the local host received (sent, for an
	// Upload) over all its connections while this one lasted, counting
	// only the time data was flowing (track.DirStats.ReceiverRate): the
	// bandwidth the client gets, which Throughput underestimates for a
	// client using parallel or idle keep-alive connections. 0 = unknown.
	// The local tables aggregate it instead of Throughput (SampleFor).
	HostRate float64 `json:"host_rate,omitempty"`

	Periodic bool `json:"periodic,omitempty"` // an interim report of a connection still open
}

// End returns the time of the report's last packet, which is the time the
// aggregation ages it from.
func (r *Report) End() time.Time {
	return r.Start.Add(time.Duration(r.Duration * float64(time.Second)))
}

// Validation limits for reports. They reject nonsense, not unusual traffic.
const (
	MaxReportDuration = 30 * 24 * 3600 // seconds
	MaxReportRTT      = 600_000        // milliseconds
	MaxReportRate     = 1e13           // bytes/s (80 Tbit/s)
)

// ErrInvalidReport is wrapped by every error Validate returns.
var ErrInvalidReport = errors.New("spand: invalid report")

func finiteIn(v, lo, hi float64) bool {
	return !math.IsNaN(v) && v >= lo && v <= hi
}

// Validate checks types and ranges and says what is wrong with the first
// bad field.
func (r *Report) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidReport, fmt.Sprintf(format, args...))
	}
	switch {
	case !r.Local.IsValid():
		return bad("local: missing or not an IP address")
	case !r.Remote.IsValid():
		return bad("remote: missing or not an IP address")
	case r.Local.Zone() != "" || r.Remote.Zone() != "":
		return bad("addresses must not carry a zone")
	case !r.Class.Valid():
		return bad("class %q: want bulk, web, interactive or realtime", r.Class)
	case r.Start.IsZero() || r.Start.Year() < 1970 || r.Start.Year() > 9999:
		return bad("start: missing or out of range")
	case !finiteIn(r.Duration, 0, MaxReportDuration):
		return bad("duration_s %v: want 0..%d", r.Duration, MaxReportDuration)
	case r.Bytes < 0:
		return bad("bytes %d: negative", r.Bytes)
	case !finiteIn(r.Throughput, 0, MaxReportRate):
		return bad("throughput %v: want 0..%g", r.Throughput, float64(MaxReportRate))
	case !finiteIn(r.RTTMin, 0, MaxReportRTT):
		return bad("rtt_min_ms %v: want 0..%d", r.RTTMin, MaxReportRTT)
	case !finiteIn(r.RTTMedian, 0, MaxReportRTT):
		return bad("rtt_median_ms %v: want 0..%d", r.RTTMedian, MaxReportRTT)
	case r.RTTMin > 0 && r.RTTMedian > 0 && r.RTTMedian < r.RTTMin:
		return bad("rtt_median_ms %v below rtt_min_ms %v", r.RTTMedian, r.RTTMin)
	case !finiteIn(r.Loss, 0, 1):
		return bad("loss %v: want a fraction 0..1", r.Loss)
	case !finiteIn(r.ResponseTime, 0, MaxReportDuration*1000):
		return bad("response_time_ms %v: out of range", r.ResponseTime)
	case !finiteIn(r.ResponseRate, 0, MaxReportRate):
		return bad("response_rate %v: want 0..%g", r.ResponseRate, float64(MaxReportRate))
	case !finiteIn(r.HostRate, 0, MaxReportRate):
		return bad("host_rate %v: want 0..%g", r.HostRate, float64(MaxReportRate))
	}
	return nil
}

// LocalFunc tells whether an address is on the LAN side of the capture
// point.
type LocalFunc func(netip.Addr) bool

// DefaultLocalPrefixes are the prefixes taken as the LAN when none are
// configured: RFC 1918, RFC 6598 shared space, IPv6 unique local and
// link-local, and loopback.
var DefaultLocalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("::1/128"),
}

// LocalPrefixes returns a LocalFunc that is true for addresses inside any
// of prefixes, or inside DefaultLocalPrefixes when prefixes is empty.
func LocalPrefixes(prefixes ...netip.Prefix) LocalFunc {
	if len(prefixes) == 0 {
		prefixes = DefaultLocalPrefixes
	}
	ps := append([]netip.Prefix(nil), prefixes...)
	return func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes (or single
// addresses) as given on a command line.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("spand: local prefix %q: %w", f, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Sides decides which of two endpoints is the local (LAN) one: the one local
// says is local; when both or neither are, the initiator (the side that
// sent the first SYN, or the first packet seen) is taken as the client.
func Sides(initiator, responder netip.Addr, local LocalFunc) (loc, remote netip.Addr, swapped bool) {
	if local == nil {
		local = LocalPrefixes()
	}
	li, lr := local(initiator), local(responder)
	if lr && !li {
		return responder, initiator, true
	}
	return initiator, responder, false
}

// ReportFromConn turns a connection record from the tracker into a report.
// local says which addresses are on the LAN (nil: DefaultLocalPrefixes);
// when both or neither endpoint is local, the initiator is the client. ok
// is false for records that say nothing about performance: class "other"
// (no data, or nothing recognisable), no payload, or no elapsed time.
//
// Bytes and Throughput are those of the direction with more unique bytes;
// loss is its retransmitted data segments over its data segments. RTT is
// the tracker's end-to-end estimate (data-to-ACK, else TCP timestamps,
// else the handshake; see reportRTT). Periodic records of long connections give Periodic
// reports covering the connection so far.
func ReportFromConn(c *track.Conn, local LocalFunc) (r Report, ok bool) {
	class := Class(c.Class)
	if !class.Valid() || c.Last.Before(c.First) {
		return Report{}, false
	}
	loc, remote, swapped := Sides(c.A.Addr(), c.B.Addr(), local)
	up, down := &c.AB, &c.BA // seen from the local side
	if swapped {
		up, down = down, up
	}
	main, upload := down, false
	if up.UniqueBytes > down.UniqueBytes {
		main, upload = up, true
	}
	elapsed := c.Elapsed().Seconds()
	if main.UniqueBytes == 0 || elapsed <= 0 {
		return Report{}, false
	}
	thr := main.Throughput
	if thr <= 0 {
		thr = float64(main.UniqueBytes) / elapsed
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r = Report{
		Local: loc.Unmap(), Remote: remote.Unmap(), Class: class,
		Start: c.First, Duration: elapsed,
		Bytes: int64(main.UniqueBytes), Throughput: min(thr, MaxReportRate), Upload: upload,
		Periodic: !c.Final,
	}
	hostRate := down.ReceiverRate
	if upload {
		hostRate = up.SenderRate
	}
	r.HostRate = min(hostRate, MaxReportRate)
	r.RTTMin, r.RTTMedian = reportRTT(c)
	r.RTTMin, r.RTTMedian = min(r.RTTMin, MaxReportRTT), min(r.RTTMedian, MaxReportRTT)
	if main.DataPackets > 0 {
		r.Loss = min(1, float64(main.RexmtPackets)/float64(main.DataPackets))
	}
	if c.Responses > 0 {
		r.ResponseTime = ms(c.ResponseTime)
		r.ResponseRate = min(c.ResponseRate, MaxReportRate)
	}
	return r, r.Validate() == nil
}

// reportRTT picks a report's RTT minimum and median from a record. The
// handshake (SYN to the ACK of the SYN-ACK), when seen, is one clean
// end-to-end sample and the floor: a data-to-ACK or timestamp median
// below it means something near the capture point (a NAT, a proxy, a
// virtual switch) acknowledged the data, as in the corpus's bro.org
// capture (0.2 ms medians on a 75 ms path), so it is not used.
func reportRTT(c *track.Conn) (minMS, medMS float64) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	hs := ms(c.HandshakeRTT)
	for _, med := range []time.Duration{c.RTTMedian, c.TSRTTMedian} {
		if med <= 0 || ms(med) < hs {
			continue
		}
		lo := ms(c.RTTMin)
		if hs > 0 || lo <= 0 || med != c.RTTMedian {
			lo = hs // the handshake, or 0 for timestamps without one
		}
		return lo, ms(med)
	}
	return hs, hs
}
