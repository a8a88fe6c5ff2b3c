package track

import (
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns    = 1 << 16          // table entries (TCP connections and UDP flows)
	DefaultIdleTimeout = 4 * time.Minute  // tcptrace's same-endpoints reuse interval
	DefaultSYNTimeout  = 10 * time.Second // tstat's singleton timeout: only SYNs seen
	DefaultCloseLinger = 5 * time.Second  // kept after FIN/FIN or RST to absorb the last ACKs
	DefaultUDPTimeout  = time.Minute      // idle UDP flow
	DefaultPeriodic    = time.Minute      // interim record interval for long connections
)

// Config configures a Tracker. The zero value is valid: every zero field
// means the corresponding Default constant.
type Config struct {
	// OnConn receives every connection record: when a connection closes,
	// times out, is evicted or flushed, and periodically (Final false)
	// while it lasts. The *Conn is only valid during the call.
	OnConn func(*Conn)

	MaxConns    int           // connection table size; the least recently used entry is evicted beyond it
	IdleTimeout time.Duration // an established connection with no packet for this long ends
	SYNTimeout  time.Duration // a connection that never got past its SYN ends after this
	CloseLinger time.Duration // after FIN both ways or RST the record waits this long for stragglers
	UDPTimeout  time.Duration // idle UDP flow timeout
	// Periodic is the interval of interim records for long connections;
	// negative disables them.
	Periodic time.Duration
}

// Stats are the Tracker's counters.
type Stats struct {
	Packets     uint64 // packets given to the tracker
	TCP, UDP    uint64 // TCP segments and UDP datagrams tracked
	Skipped     uint64 // not IP, not TCP/UDP, or undecodable (MPLS, fragments, ...)
	Truncated   uint64 // TCP/IP headers cut short by the snap length
	Conns       uint64 // connection records created
	Active      int    // entries in the table now
	Closed      uint64 // ended by FIN/RST
	IdleExpired uint64 // ended by an idle timeout (including SYN-only)
	Evicted     uint64 // dropped because the table was full (LRU)
	Reused      uint64 // ended by a new SYN on the same endpoints
	Flushed     uint64 // ended by Flush
}

// A Tracker follows connections. It is not safe for concurrent use: feed it
// from one goroutine (the capture loop).
type Tracker struct {
	cfg   Config
	stats Stats
}

// New returns a Tracker with cfg (zero fields take their defaults).
func New(cfg Config) *Tracker {
	return &Tracker{cfg: cfg}
}

// Flush ends every connection in the table (Reason EndFlush), delivering
// its record, e.g. at the end of a capture file.
func (t *Tracker) Flush() {}

// Stats returns the counters.
func (t *Tracker) Stats() Stats { return t.stats }
