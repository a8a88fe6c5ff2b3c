// Package spand implements shared passive network performance discovery
// after SPAND (Seshan, Stemm and Katz, "SPAND: Shared Passive Network
// Performance Discovery", USITS 1997): hosts on a LAN learn how fast remote
// hosts are, and how fast the LAN's own clients are, from the transfers
// that already happen, without sending a single probe.
//
// The parts:
//
//   - Package capture reads packets (files, AF_PACKET, libpcap) and package
//     track turns them into per-connection records (track.Conn) with
//     tcptrace's definitions.
//   - ReportFromConn condenses a record into a Report: local host (the LAN
//     side, by LocalPrefixes, else the initiator), remote host, class
//     (bulk, web, interactive, realtime), start, duration, bytes,
//     throughput, RTT minimum and median, loss, response time and response
//     body rate, and the local host's rate (HostRate). Clients that
//     measure for themselves (icapd in proxy mode) POST reports of the
//     same shape.
//   - The local-host estimate: Throughput is tcptrace's unique bytes over
//     the connection's lifetime, which for a client loading pages over six
//     parallel keep-alive connections, idle between pages, is a fraction
//     of its bandwidth. HostRate is what the local host received (sent,
//     for uploads) over all its connections during this one, over the
//     time data was flowing to it: the union of their busy intervals,
//     gaps between its data packets above track.Config.BusyGap (500 ms)
//     left out (see package track, "Host rates"). The local tables
//     (local host, local prefix) aggregate HostRate in place of
//     Throughput when a report has one (SampleFor); the remote tables keep
//     Throughput. Behind a 1 Mbit/s link, six parallel connections gave
//     968 kbit/s where the per-connection throughputs gave 102
//     (TestParallelConnectionsLiveTestbed).
//   - An Aggregator keeps reports by (remote host, class), by (remote /24
//     or /64, class), by (local host, class) and, with
//     Config.LocalPrefixes, by (local /24 or /64, class). Reports weigh
//     2^(-age/HalfLife); reports older than MaxAge are dropped and keys
//     with none left expire. Each table holds at most MaxKeys keys (least
//     recently updated evicted) of at most MaxSamples reports each.
//   - Predict answers with a decay-weighted median throughput, its 25th
//     and 75th percentiles, RTT, loss, the number of live reports behind
//     the answer, their age and the key that answered: the remote host,
//     else the local host, else the remote prefix, else "none". For a LAN
//     client (Config.Local) the last resort is its local prefix (with
//     LocalPrefixes), never the remote prefix table: behind a proxy that
//     is the proxy's /24, which mixes all its clients.
//   - A Store holds the aggregation: MemoryStore (snapshotted atomically to
//     a file, so a restart keeps what was learned) or redisstore.Store
//     (one view shared by many capture hosts and icapd nodes).
//   - Server is the performance server's HTTP JSON API, Client its Go
//     client with a local cache, which icapd uses, and Reporter a
//     background sender for clients that measure their own transfers.
//   - Evaluate replays reports in time order and measures what fraction of
//     connections the server could answer and how many answers were
//     within a factor of 2: the paper's two headline figures.
//
// Every limit (keys, samples, body bytes, batch size, rate, cache entries)
// is a field whose zero value means its Default constant.
package spand
