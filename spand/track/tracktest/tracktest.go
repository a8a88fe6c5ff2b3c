// Package tracktest builds packets of every link type spand decodes, for
// tests of the decoder, the tracker and the capture filters.
package tracktest

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Segment describes one TCP segment (or UDP datagram with UDP set).
type Segment struct {
	Src, Dst     netip.AddrPort
	UDP          bool
	SYN, ACK     bool
	FIN, RST     bool
	PSH          bool
	Seq, Ack     uint32
	Window       uint16
	TSval, TSecr uint32 // a timestamps option when either is non-zero
	Payload      []byte
	VLAN         uint16 // 802.1Q tag on Ethernet when non-zero
}

// LinkTypes are the link types Frame can build.
var LinkTypes = []layers.LinkType{
	layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2,
	layers.LinkTypeNull, layers.LinkTypeLoop, layers.LinkTypeRaw,
}

// Frame returns s as a frame of link type lt. It panics on a link type it
// cannot build (a test bug).
func Frame(lt layers.LinkType, s Segment) []byte {
	v6 := s.Src.Addr().Is6() && !s.Src.Addr().Is4In6()
	var ip []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolTCP
	if s.UDP {
		proto = layers.IPProtocolUDP
	}
	if v6 {
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: net.IP(s.Src.Addr().AsSlice()), DstIP: net.IP(s.Dst.Addr().AsSlice())}
		ip, nl = append(ip, l), l
	} else {
		l := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto,
			SrcIP: net.IP(s.Src.Addr().Unmap().AsSlice()), DstIP: net.IP(s.Dst.Addr().Unmap().AsSlice())}
		ip, nl = append(ip, l), l
	}
	if s.UDP {
		u := &layers.UDP{SrcPort: layers.UDPPort(s.Src.Port()), DstPort: layers.UDPPort(s.Dst.Port())}
		u.SetNetworkLayerForChecksum(nl)
		ip = append(ip, u)
	} else {
		t := &layers.TCP{SrcPort: layers.TCPPort(s.Src.Port()), DstPort: layers.TCPPort(s.Dst.Port()),
			Seq: s.Seq, Ack: s.Ack, SYN: s.SYN, ACK: s.ACK, FIN: s.FIN, RST: s.RST, PSH: s.PSH, Window: s.Window}
		if s.TSval != 0 || s.TSecr != 0 {
			d := make([]byte, 8)
			binary.BigEndian.PutUint32(d, s.TSval)
			binary.BigEndian.PutUint32(d[4:], s.TSecr)
			t.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: d}}
		}
		t.SetNetworkLayerForChecksum(nl)
		ip = append(ip, t)
	}
	ip = append(ip, gopacket.Payload(s.Payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip...); err != nil {
		panic(err)
	}
	pkt := buf.Bytes()
	etype := uint16(layers.EthernetTypeIPv4)
	family := uint32(2)
	if v6 {
		etype, family = uint16(layers.EthernetTypeIPv6), 24
	}
	var hdr []byte
	switch lt {
	case layers.LinkTypeEthernet:
		hdr = make([]byte, 14)
		copy(hdr, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
		if s.VLAN != 0 {
			binary.BigEndian.PutUint16(hdr[12:], uint16(layers.EthernetTypeDot1Q))
			tag := make([]byte, 4)
			binary.BigEndian.PutUint16(tag, s.VLAN&0x0fff)
			binary.BigEndian.PutUint16(tag[2:], etype)
			hdr = append(hdr, tag...)
		} else {
			binary.BigEndian.PutUint16(hdr[12:], etype)
		}
	case layers.LinkTypeLinuxSLL:
		hdr = make([]byte, 16)
		binary.BigEndian.PutUint16(hdr[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(hdr[4:], 6)
		binary.BigEndian.PutUint16(hdr[14:], etype)
	case layers.LinkTypeLinuxSLL2:
		hdr = make([]byte, 20)
		binary.BigEndian.PutUint16(hdr[0:], etype)
		binary.BigEndian.PutUint32(hdr[4:], 2) // ifindex
		binary.BigEndian.PutUint16(hdr[8:], 1) // ARPHRD_ETHER
		hdr[11] = 6
	case layers.LinkTypeNull:
		hdr = binary.LittleEndian.AppendUint32(nil, family)
	case layers.LinkTypeLoop:
		hdr = binary.BigEndian.AppendUint32(nil, family)
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
	default:
		panic("tracktest: cannot build link type " + lt.String())
	}
	return append(hdr, pkt...)
}
