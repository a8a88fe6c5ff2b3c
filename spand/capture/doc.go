// Package capture provides spand's packet sources and capture filters.
//
// Sources, all pure Go by default:
//
//   - File (OpenFile): pcap (either byte order, micro- or nanosecond),
//     pcapng, and either of them compressed with gzip, told apart by their
//     magic numbers. A regular file is mapped into memory and a pcap file
//     is read in place: each packet is a slice of the mapping, with no
//     copy, no allocation and no system call (its reader takes and refuses
//     what gopacket's pcapgo does, FuzzPcapReader). pcapng, gzip and
//     files that cannot be mapped (pipes) are read as streams with pcapgo,
//     without allocating per packet.
//   - Live (OpenLive, Linux): AF_PACKET with a TPACKET_V3 memory-mapped
//     ring (gopacket's afpacket). The filter runs in the kernel, and its
//     accepting returns are cut to LiveOptions.SnapLen (256 bytes by
//     default: the tracker reads headers and takes lengths from IP), so
//     the ring holds headers only and keeps up with full-speed transfers.
//     On lo (and for loopback traffic on "any") the outgoing copy of each
//     packet is dropped in the kernel, so it is counted once. Packets the
//     socket queued before the filter was attached are drained first. Stats gives the kernel's packet and drop counters.
//     Without root or CAP_NET_RAW the error wraps ErrPermission and gives
//     the setcap command that fixes it.
//   - Pcap (OpenPcapLive, OpenPcapFile): libpcap through gopacket/pcap,
//     only with the build tag libpcap, for platforms without AF_PACKET.
//
// Filters use tcpdump's syntax. CompileFilter compiles with `tcpdump -dd`
// when tcpdump is installed, and otherwise with a built-in compiler
// (CompileBuiltin) for the common subset: host, net, port with src/dst,
// ip, ip6, tcp, udp, icmp, icmp6, arp, and/or/not and parentheses. Both
// produce classic BPF, which is set in the kernel for live capture and run
// in the x/net/bpf virtual machine for files, so a filter means the same
// thing in both modes; TestBuiltinFilterAgreesWithTcpdump checks the two
// compilers accept the same packets of every corpus capture.
//
// Run reads a source into a track.Tracker.
package capture
