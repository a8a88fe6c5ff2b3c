// Package track decodes captured packets and follows TCP connections (and
// UDP flows) on their headers alone, producing one Conn record per
// connection with per-direction metrics defined as tcptrace defines them,
// so that results can be checked against it.
//
// # Decoding
//
// A Decoder wraps a gopacket DecodingLayerParser over layers it owns, so
// decoding allocates nothing per packet. The plainest frames (Ethernet
// without tags or raw IP, IPv4 without options or IPv6 without extension
// headers, TCP or UDP) are read by a walk over the header bytes that
// fills only the fields a Packet holds (wire.go); the other common ones
// take a second fast path through the same gopacket layers'
// DecodeFromBytes without the parser's generic dispatch; anything else,
// or any error, goes to the parser, which stays the decoder of record:
// all paths give the same Packet (TestDecodeFastSame on every corpus
// frame, FuzzDecode). Link types: Ethernet (802.1Q and
// 802.1ad tags), Linux cooked capture v1 and v2 (the "any" device), raw IP
// (the version is read per packet), BSD loopback/null. IPv4 and IPv6, TCP
// and UDP; anything else (ARP, ICMP, MPLS, IP fragments after the first)
// is counted in Stats.Skipped and ignored, and malformed headers in
// Stats.Malformed; no input makes it panic (FuzzDecode).
//
// Payload lengths come from the IP header, not from the captured bytes:
// headers-only captures (small snap lengths) count what was sent, frames
// cut short are counted in Stats.Truncated. An IPv4 total length of zero
// (TSO/GSO super-segments captured on the sending host) falls back to the
// captured length. All byte counts are payload bytes, never segments
// times an MSS, so 64 KB super-segments count right.
//
// # Metrics (per direction, tcptrace compatible)
//
//   - DataBytes: payload bytes of every segment, retransmissions included
//     (tcptrace "actual data bytes").
//   - UniqueBytes: payload bytes whose sequence numbers had not been seen
//     before (tcptrace "unique bytes sent"). RexmtPackets and RexmtBytes:
//     segments that repeat sequence space already seen, and how much of
//     it; as in tcptrace a retransmitted SYN or FIN counts. Segments sent
//     into a zero window are probes, counted as neither.
//   - Throughput: UniqueBytes divided by the connection's elapsed time,
//     first to last packet in either direction (tcptrace "throughput").
//   - RTT: a data segment to the ACK that acknowledges exactly its last
//     byte, skipping segments sent more than once and ACKs after an
//     earlier segment was sent again (Karn's rule, tcptrace's ack_in).
//     For the data of one direction this is the capture point to the
//     receiver and back. HandshakeLeg is tcptrace's "RTT from 3WHS".
//   - Timestamp RTT, as pping does: the first sighting of each TSval in
//     one direction is matched with the first packet of the other
//     direction echoing it in TSecr.
//
// Per connection, HandshakeRTT is SYN to the ACK of the SYN-ACK (tshark's
// iRTT). RTTMin, RTTMedian and TSRTTMedian add the two legs (capture point
// to A and back, capture point to B and back), each leg's minimum or
// median taken from its own samples or, for a leg that timed no data, its
// handshake leg: the sum is the end-to-end RTT wherever the capture point
// sits, where a mean over both directions would mix a 0.1 ms leg with a
// 50 ms one. Medians come from at most 128 samples per direction
// (reservoir sampling beyond); minimums are exact.
//
// Request/response: data from A is a request, the data from B that follows
// is its response. ResponseTime is from the request's last byte to the
// first byte of its response, for the first exchange; ResponseRate is the
// response bytes over the time from their first to their last byte,
// summed over responses of more than one segment: the body transfer rate
// content adaptation needs, without the server's think time.
//
// Host rates (not tcptrace's): the tracker also counts, per address over
// all its TCP connections in the table, the unique bytes it sent and
// received and its busy time: the sum of the gaps between its consecutive
// data packets (in that direction, any connection) of at most
// Config.BusyGap (DefaultBusyGap, 500 ms). A longer gap is idle (a
// keep-alive connection waiting for the next request, a user reading) and
// the bytes of the packet after it are not counted either. Each record's
// DirStats.SenderRate and ReceiverRate are the bytes over the busy time
// its sender and receiver had during the connection's lifetime: the union
// of the busy intervals of all their connections, so six parallel
// connections sharing a link each show the link's rate, not a sixth of it
// diluted by idle time (TestHostRate). Memory: one small entry per
// address with a connection in the table, dropped with its last one.
//
// # The connection table
//
// Entries are keyed by the unordered endpoint pair and protocol; A is the
// sender of the first SYN, or the receiver of a SYN-ACK seen first, or the
// sender of the first packet (connections picked up mid-stream). The table
// is bounded by Config.MaxConns (DefaultMaxConns): beyond it the least
// recently used entry is ended and delivered with EndEvicted, so a SYN
// flood recycles entries instead of growing memory (TestTrackerSYNFlood).
// Entries and their sample buffers are pooled: tracking allocates nothing
// per packet in steady state (BenchmarkTrackEcho).
//
// Timeouts, checked once per second of capture time against a clock that
// never goes backwards (merged captures jump), follow tstat: a connection
// that saw only SYNs ends after SYNTimeout (10 s); one closed by FIN in
// both directions or by RST is delivered CloseLinger (5 s) after its last
// packet, so that the final ACKs still count; an idle one ends after
// IdleTimeout (4 min, tcptrace's interval for reused endpoints); UDP flows
// after UDPTimeout (1 min). A SYN on the endpoints of a closed connection,
// or with another initial sequence number, starts a new record
// (EndReused). Long connections get interim records every Periodic
// (Final false). Every ending is counted in Stats. The clock moves with
// packet timestamps, and with Advance: a live capture calls it when idle
// (capture.Run, with wall time), so that on a quiet network the records
// still come on time; offline, timeouts depend on the capture only.
//
// # Application classes
//
// SPAND keeps measurements apart by class, because one path performs
// differently for a bulk transfer, a request/response exchange and an
// interactive session. A TCP connection is:
//
//   - web (request/response) when either port is 80, 443, 8000, 8008,
//     8080, 8443, 8888 or 3128;
//   - bulk when one direction carried at least BulkBytes (256 KB) of unique
//     data in segments averaging 512 bytes or more, whatever the port (an
//     scp over ssh is bulk);
//   - interactive when a port is 22, 23, 513, 3389, 5900 or 5901;
//   - bulk when a port is 20, 21, 25, 119, 445, 587, 873 or 2049;
//   - interactive when data packets average under InteractiveSegment (128
//     bytes) in both directions (keystrokes, echoes);
//   - bulk when one direction carried at least BulkMinBytes (64 KB);
//   - web when B answered at least one request from A (request/response
//     behaviour);
//   - bulk when only one direction carried data (a short transfer);
//   - interactive otherwise (a conversation of medium-sized messages);
//     other when no data was sent at all.
//
// A UDP flow is other for well-known service ports (DNS, DHCP, NTP,
// NetBIOS, SNMP, syslog, SSDP, mDNS, LLMNR), realtime for STUN/TURN, RTP,
// SIP, the usual RTP range 16384-32767 and game ports, and realtime by
// behaviour when it has at least RealtimeMinPackets (20) packets at
// RealtimeMinRate (5) packets/s or more of at most 1400 bytes (a media
// stream); other otherwise.
package track
