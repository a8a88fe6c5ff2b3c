package track

import (
	"net/netip"
	"time"
)

// Class is the application class of a connection (see the package
// documentation for how each is recognised). The values are the same
// strings as spand.Class, so spand.Class(c.Class) converts.
type Class string

// The application classes.
const (
	ClassBulk        Class = "bulk"        // one-way transfers
	ClassWeb         Class = "web"         // request/response
	ClassInteractive Class = "interactive" // keystroke-sized exchanges
	ClassRealtime    Class = "realtime"    // UDP media, voice, games
	ClassOther       Class = "other"       // no data, or nothing recognisable (e.g. DNS)
)

// Proto is the transport protocol of a Conn.
type Proto uint8

// Transport protocols tracked.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "unknown"
}

// EndReason says why a Conn was handed to the callback.
type EndReason uint8

// Reasons a connection record is delivered.
const (
	EndClosed   EndReason = iota + 1 // FIN in both directions or RST, then the linger time passed
	EndIdle                          // no packet for the idle timeout
	EndEvicted                       // the table was full; least recently used entry dropped
	EndReused                        // a new SYN reused the endpoints of a finished connection
	EndFlush                         // Tracker.Flush (end of a capture file, shutdown)
	EndPeriodic                      // interim record of a connection still open (Conn.Final is false)
)

func (r EndReason) String() string {
	switch r {
	case EndClosed:
		return "closed"
	case EndIdle:
		return "idle"
	case EndEvicted:
		return "evicted"
	case EndReused:
		return "reused"
	case EndFlush:
		return "flush"
	case EndPeriodic:
		return "periodic"
	}
	return "unknown"
}

// DirStats are the statistics of one direction of a connection, with
// tcptrace's definitions (see the package documentation).
type DirStats struct {
	Packets      uint64  // all packets sent in this direction
	DataPackets  uint64  // packets with payload
	DataBytes    uint64  // payload bytes, retransmissions included (tcptrace "actual data bytes")
	UniqueBytes  uint64  // payload bytes not seen before (tcptrace "unique bytes sent")
	RexmtPackets uint64  // segments repeating sequence space already seen (SYN/FIN count, as in tcptrace)
	RexmtBytes   uint64  // bytes of sequence space sent again
	OutOfOrder   uint64  // segments filling a hole below the highest sequence seen
	Throughput   float64 // UniqueBytes / Conn.Elapsed, bytes/s (tcptrace "throughput")

	// Data-to-ACK RTT of the data sent in this direction: capture point to
	// the receiver and back. Karn's rule: segments sent more than once and
	// ACKs that follow a retransmission give no sample.
	RTTSamples int
	RTTMin     time.Duration
	RTTMedian  time.Duration

	// Timestamp RTT (pping): first sighting of each TSval sent in this
	// direction to the first packet of the other direction echoing it in
	// TSecr. Also capture point to the receiver and back.
	TSRTTSamples int
	TSRTTMedian  time.Duration

	// HandshakeLeg is tcptrace's "RTT from 3WHS": for a->b the SYN to
	// SYN-ACK time, for b->a the SYN-ACK to its ACK. Zero if not seen.
	HandshakeLeg time.Duration

	// SenderRate and ReceiverRate are the bytes/s at which this
	// direction's sender sent, and its receiver received, unique TCP
	// payload over all their connections in the table during this
	// connection's lifetime, counting busy time only: a gap between two
	// data packets of that host (any connection) longer than
	// Config.BusyGap is idle and left out, as are the bytes of the packet
	// after it. With parallel connections this is the host's whole rate,
	// not this connection's share; on a keep-alive connection it leaves
	// out the idle time between exchanges. Zero when no busy time passed.
	// (Not tcptrace figures; Throughput is.)
	SenderRate, ReceiverRate float64
}

// Conn is the record of one TCP connection (or UDP flow). The Tracker
// hands a *Conn to OnConn; it is only valid during the call (the memory is
// reused), so copy the value (c2 := *c) to keep it. Conn holds no
// pointers or slices, so a plain copy is a deep copy.
type Conn struct {
	ID    uint64         // sequence number of creation within the Tracker, from 1
	Proto Proto          // TCP or UDP
	A, B  netip.AddrPort // A sent the first SYN, or the first packet seen
	Class Class

	First, Last time.Time // first and last packet of the connection, either direction
	AB, BA      DirStats  // a->b and b->a

	// HandshakeRTT is SYN to the ACK of the SYN-ACK (tshark's iRTT; the
	// sum of both HandshakeLegs). Zero when the handshake was not seen or
	// the SYN was retransmitted.
	HandshakeRTT time.Duration
	// RTTMin and RTTMedian estimate the end-to-end RTT as the sum of the
	// two legs (capture point to A and back, capture point to B and back),
	// each from the data-to-ACK samples of the data sent towards that side,
	// or from the handshake leg when a side sent no data that was timed.
	RTTMin, RTTMedian time.Duration
	// TSRTTMedian is the same sum from the TCP timestamp (pping) samples;
	// zero when the connection carried no timestamps.
	TSRTTMedian time.Duration

	// Request/response: ResponseTime is the time from the last byte of the
	// first request (data from A) to the first byte of its response (data
	// from B); ResponseRate is the response bytes divided by the time from
	// their first to their last byte, over all responses of more than one
	// segment (the body transfer rate content adaptation needs).
	Responses    int
	ResponseTime time.Duration
	ResponseRate float64

	SYN, SYNACK bool // handshake packets seen
	FinAB       bool // FIN seen a->b
	FinBA       bool // FIN seen b->a
	Reset       bool // RST seen
	// Complete is true when the handshake and the close (FIN both ways,
	// or RST) were both seen.
	Complete bool

	Reason EndReason // why this record was delivered
	Final  bool      // false for periodic records of a connection still open
}

// Elapsed is the time from the first to the last packet.
func (c *Conn) Elapsed() time.Duration { return c.Last.Sub(c.First) }

// Client returns the initiator (A) address; Server the responder (B).
func (c *Conn) Client() netip.AddrPort { return c.A }

// Server returns the responder (B) endpoint.
func (c *Conn) Server() netip.AddrPort { return c.B }
