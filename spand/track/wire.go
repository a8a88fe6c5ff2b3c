package track

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// wire decodes the plainest and by far the most common frames straight
// into p, reading the header fields the tracker needs and nothing else:
// Ethernet without VLAN tags (or raw IP) carrying IPv4 without options
// or fragmentation, or IPv6 without extension headers, carrying TCP or
// UDP. It is the first of the Decoder's two fast paths: the gopacket
// layers' DecodeFromBytes spend most of their time filling fields spand
// never reads (MAC addresses, every TCP option into a slice). For
// anything else (other link types, VLAN tags, IPv4 options, zero IP
// lengths of TSO captures, fragments, MPTCP options, any malformed
// header) it returns false without touching p, and Decode hands the
// frame to gopacket, which stays the decoder of record: FuzzDecode and
// TestDecodeFastSame check that both give the same Packet on every
// frame this path takes.
func (d *Decoder) wire(data []byte, p *Packet) bool {
	switch {
	case d.link == layers.LinkTypeEthernet:
		if len(data) < 14 {
			return false
		}
		switch binary.BigEndian.Uint16(data[12:14]) {
		case 0x0800:
			return wire4(data[14:], p)
		case 0x86dd:
			return wire6(data[14:], p)
		}
		return false
	case d.parser == nil && len(data) > 0: // raw IP: the version says which
		switch data[0] >> 4 {
		case 4:
			return wire4(data, p)
		case 6:
			return wire6(data, p)
		}
	}
	return false
}

// wire4 decodes an IPv4 header without options (as gopacket's IPv4 layer
// does, the version nibble is not looked at: the link layer said IPv4).
func wire4(data []byte, p *Packet) bool {
	if len(data) < 20 || data[0]&0x0f != 5 {
		return false
	}
	total := int(binary.BigEndian.Uint16(data[2:4]))
	if total < 20 {
		return false // 0 (TSO) and nonsense lengths: the gopacket path
	}
	if binary.BigEndian.Uint16(data[6:8])&0x3fff != 0 {
		return false // more fragments, or a fragment offset
	}
	if len(data) > total {
		data = data[:total] // link-layer padding
	}
	proto := data[9]
	if proto != 6 && proto != 17 {
		return false
	}
	if !transport(data[20:], total-20, proto, false, p) {
		return false
	}
	p.Src = netip.AddrFrom4([4]byte(data[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(data[16:20]))
	return true
}

// wire6 decodes an IPv6 header followed directly by TCP or UDP.
func wire6(data []byte, p *Packet) bool {
	if len(data) < 40 {
		return false
	}
	length := int(binary.BigEndian.Uint16(data[4:6]))
	if length == 0 {
		return false // jumbogram or GSO: the gopacket path
	}
	proto := data[6]
	if proto != 6 && proto != 17 {
		return false
	}
	payload := data[40:]
	if len(payload) > length {
		payload = payload[:length]
	}
	if !transport(payload, length, proto, true, p) {
		return false
	}
	p.Src = netip.AddrFrom16([16]byte(data[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(data[24:40]))
	return true
}

// transport decodes the TCP or UDP header at the start of seg, the
// captured part of a segment the IP header says is l4Len bytes long (v6:
// an IPv6 payload length).
func transport(seg []byte, l4Len int, proto uint8, v6 bool, p *Packet) bool {
	if proto == 17 {
		if len(seg) < 8 {
			return false
		}
		ulen := int(binary.BigEndian.Uint16(seg[4:6]))
		captured := len(seg) - 8 // UDP length 0: jumbogram, all of it
		if ulen != 0 {
			if ulen < 8 || v6 && ulen < len(seg) {
				// Too short, or (IPv6) shorter than what follows it,
				// which Decoder.fill takes for extension headers.
				return false
			}
			captured = min(ulen, len(seg)) - 8
		}
		p.Proto = UDP
		p.SrcPort, p.DstPort = binary.BigEndian.Uint16(seg[0:2]), binary.BigEndian.Uint16(seg[2:4])
		p.Seq, p.Ack, p.Flags, p.Window, p.HasTS = 0, 0, 0, 0, false
		p.PayloadLen = max(l4Len-8, 0)
		p.Truncated = captured < l4Len-8
		return true
	}
	if len(seg) < 20 {
		return false
	}
	hdr := int(seg[12]>>4) * 4
	if hdr < 20 || hdr > len(seg) {
		return false
	}
	// Options, walked as gopacket walks them: end of list stops, NOP is
	// one byte, any other kind has a length of at least 2 that must stay
	// inside the header, or the walk stops there (the segment stays
	// valid). The last well-formed timestamps option wins.
	hasTS, tsval, tsecr := false, uint32(0), uint32(0)
	for o := seg[20:hdr]; len(o) > 0; {
		kind := o[0]
		if kind == 0 {
			break
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if kind == 30 {
			return false // MPTCP: gopacket validates its subtypes
		}
		if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
			break
		}
		n := int(o[1])
		if kind == 8 && n == 10 {
			hasTS = true
			tsval, tsecr = binary.BigEndian.Uint32(o[2:6]), binary.BigEndian.Uint32(o[6:10])
		}
		o = o[n:]
	}
	p.Proto = TCP
	p.SrcPort, p.DstPort = binary.BigEndian.Uint16(seg[0:2]), binary.BigEndian.Uint16(seg[2:4])
	p.Seq, p.Ack = binary.BigEndian.Uint32(seg[4:8]), binary.BigEndian.Uint32(seg[8:12])
	p.Flags = seg[13] & 0x3f
	p.Window = binary.BigEndian.Uint16(seg[14:16])
	p.HasTS = hasTS
	if hasTS {
		p.TSval, p.TSecr = tsval, tsecr
	}
	p.PayloadLen = max(l4Len-hdr, 0)
	p.Truncated = len(seg)-hdr < l4Len-hdr
	return true
}
