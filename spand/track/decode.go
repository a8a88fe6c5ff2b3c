package track

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TCP flag bits of Packet.Flags, as on the wire.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
)

// Packet is one decoded TCP segment or UDP datagram: the header fields the
// tracker needs and nothing else, filled in place by Decoder.Decode.
type Packet struct {
	Time     int64 // capture time, Unix nanoseconds
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Proto    Proto

	// PayloadLen is the transport payload length taken from the IP
	// header's length fields, not from the captured bytes, so headers-only
	// captures (small snap lengths) count what was sent. When the IP length
	// is zero (TSO/GSO super-segments captured on the sender) the captured
	// length is used.
	PayloadLen int
	// Truncated is set when fewer payload bytes were captured than the IP
	// header announces (snap length).
	Truncated bool

	// TCP only.
	Seq, Ack     uint32
	Flags        uint8
	Window       uint16
	HasTS        bool // a timestamps option was present
	TSval, TSecr uint32
}

// Errors of Decoder.Decode for packets the tracker skips.
var (
	// ErrNotTransport: the packet decoded but carries no TCP or UDP
	// (ARP, ICMP, IGMP, MPLS, IP fragments, unknown link payloads).
	ErrNotTransport = errors.New("track: not a TCP or UDP packet")
	// ErrLinkType: the capture's link type is not supported.
	ErrLinkType = errors.New("track: unsupported link type")
)

// A Decoder turns raw frames of one link type into Packets with a
// gopacket DecodingLayerParser: every layer is decoded in place into
// structures owned by the Decoder, so decoding allocates nothing per
// packet. Supported link types: Ethernet (with 802.1Q/802.1ad VLAN tags),
// Linux cooked capture v1 and v2, raw IP (v4 or v6, chosen per packet),
// BSD loopback/null. Anything else inside (MPLS, ARP, ICMP, fragments) is
// skipped with ErrNotTransport. A Decoder is not safe for concurrent use.
type Decoder struct {
	link layers.LinkType

	eth   layers.Ethernet
	dot1q layers.Dot1Q
	sll   layers.LinuxSLL
	sll2  layers.LinuxSLL2
	lo    layers.Loopback
	ip4   layers.IPv4
	ip6   layers.IPv6
	tcp   layers.TCP
	udp   layers.UDP

	parser *gopacket.DecodingLayerParser // for the link type
	raw4   *gopacket.DecodingLayerParser // raw IP links: per-packet choice
	raw6   *gopacket.DecodingLayerParser
	types  []gopacket.LayerType
	noFast bool // tests: always the parser
}

// SupportedLinkType reports whether a Decoder can be made for lt.
func SupportedLinkType(lt layers.LinkType) bool {
	switch lt {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2,
		layers.LinkTypeNull, layers.LinkTypeLoop,
		layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12, 14:
		// 12 and 14 are DLT_RAW on some BSDs, as libpcap maps them.
		return true
	}
	return false
}

// NewDecoder returns a Decoder for frames of link type lt.
func NewDecoder(lt layers.LinkType) (*Decoder, error) {
	if !SupportedLinkType(lt) {
		return nil, fmt.Errorf("%w %d (%s)", ErrLinkType, int(lt), lt)
	}
	d := &Decoder{link: lt, types: make([]gopacket.LayerType, 0, 8)}
	mk := func(first gopacket.LayerType) *gopacket.DecodingLayerParser {
		p := gopacket.NewDecodingLayerParser(first)
		// A sparse array indexed by layer type instead of the default
		// map: one lookup per layer is on the hot path.
		var dlc gopacket.DecodingLayerContainer = gopacket.DecodingLayerSparse(nil)
		for _, l := range []gopacket.DecodingLayer{&d.eth, &d.dot1q, &d.sll, &d.sll2, &d.lo, &d.ip4, &d.ip6, &d.tcp, &d.udp} {
			dlc = dlc.Put(l)
		}
		p.SetDecodingLayerContainer(dlc)
		p.IgnoreUnsupported = true
		return p
	}
	d.raw4 = mk(layers.LayerTypeIPv4)
	d.raw6 = mk(layers.LayerTypeIPv6)
	switch lt {
	case layers.LinkTypeEthernet:
		d.parser = mk(layers.LayerTypeEthernet)
	case layers.LinkTypeLinuxSLL:
		d.parser = mk(layers.LayerTypeLinuxSLL)
	case layers.LinkTypeLinuxSLL2:
		d.parser = mk(layers.LayerTypeLinuxSLL2)
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		d.parser = mk(layers.LayerTypeLoopback)
	}
	return d, nil
}

// LinkType returns the link type the Decoder was made for.
func (d *Decoder) LinkType() layers.LinkType { return d.link }

// Decode decodes one captured frame into p (p.Time is left alone). It
// returns ErrNotTransport for frames without TCP or UDP, and a wrapped
// decoding error for malformed or truncated headers; it never panics on
// any input.
func (d *Decoder) Decode(data []byte, p *Packet) error {
	parser := d.parser
	if parser == nil { // raw IP
		if len(data) == 0 {
			return ErrNotTransport
		}
		switch data[0] >> 4 {
		case 4:
			parser = d.raw4
		case 6:
			parser = d.raw6
		default:
			return ErrNotTransport
		}
	}
	if !d.noFast && d.wire(data, p) {
		return nil
	}
	var isV4, isV6, isTCP, isUDP bool
	if v4, tcp, ok := d.fast(data); ok {
		isV4, isV6, isTCP, isUDP = v4, !v4, tcp, !tcp
	} else if err := d.parse(parser, data, &isV4, &isV6, &isTCP, &isUDP); err != nil {
		return err
	}
	return d.fill(p, isV4, isTCP)
}

// parse decodes data with the DecodingLayerParser and tells which layers
// it found, or why the frame is not tracked.
func (d *Decoder) parse(parser *gopacket.DecodingLayerParser, data []byte, isV4, isV6, isTCP, isUDP *bool) error {
	err := parser.DecodeLayers(data, &d.types)
	for _, t := range d.types {
		switch t {
		case layers.LayerTypeIPv4:
			*isV4, *isV6 = true, false // the innermost IP header wins
		case layers.LayerTypeIPv6:
			*isV4, *isV6 = false, true
		case layers.LayerTypeTCP:
			*isTCP = true
		case layers.LayerTypeUDP:
			*isUDP = true
		}
	}
	if err != nil && !*isTCP && !*isUDP {
		if !*isV4 && !*isV6 {
			return ErrNotTransport
		}
		return fmt.Errorf("track: decode: %w", err)
	}
	if !*isTCP && !*isUDP || !*isV4 && !*isV6 {
		return ErrNotTransport
	}
	return nil
}

// fast decodes the common frames, Ethernet or raw IP carrying IPv4 or
// IPv6 (no extension header but hop-by-hop) carrying TCP or UDP, with the
// same layers' DecodeFromBytes the parser calls, in the order it calls
// them, but without its generic dispatch (a quarter of the decoding cost).
// For anything else (VLAN tags, fragments, other link types, any error,
// a panic) it returns ok false and Decode asks the parser, so the result
// is the parser's on every input (FuzzDecode compares them).
func (d *Decoder) fast(data []byte) (v4, tcp, ok bool) {
	if d.noFast {
		return false, false, false
	}
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	nf := gopacket.NilDecodeFeedback
	var next gopacket.LayerType
	switch {
	case d.link == layers.LinkTypeEthernet:
		if d.eth.DecodeFromBytes(data, nf) != nil {
			return false, false, false
		}
		next, data = d.eth.NextLayerType(), d.eth.LayerPayload()
	case d.parser == nil && len(data) > 0 && data[0]>>4 == 4:
		next = layers.LayerTypeIPv4
	case d.parser == nil && len(data) > 0 && data[0]>>4 == 6:
		next = layers.LayerTypeIPv6
	default:
		return false, false, false
	}
	if len(data) == 0 {
		return false, false, false
	}
	switch next {
	case layers.LayerTypeIPv4:
		if d.ip4.DecodeFromBytes(data, nf) != nil {
			return false, false, false
		}
		v4, next, data = true, d.ip4.NextLayerType(), d.ip4.LayerPayload()
	case layers.LayerTypeIPv6:
		if d.ip6.DecodeFromBytes(data, nf) != nil {
			return false, false, false
		}
		next, data = d.ip6.NextLayerType(), d.ip6.LayerPayload()
	default:
		return false, false, false
	}
	if len(data) == 0 {
		return false, false, false
	}
	switch next {
	case layers.LayerTypeTCP:
		if d.tcp.DecodeFromBytes(data, nf) != nil {
			return false, false, false
		}
		tcp = true
	case layers.LayerTypeUDP:
		if d.udp.DecodeFromBytes(data, nf) != nil {
			return false, false, false
		}
	default:
		return false, false, false
	}
	return v4, tcp, true
}

// fill sets p from the decoded layers.
func (d *Decoder) fill(p *Packet, isV4, isTCP bool) error {

	// l4Len is the length of the transport segment announced by IP; seg
	// is what was captured of it.
	var l4Len, segCaptured int
	if isTCP {
		segCaptured = len(d.tcp.Contents) + len(d.tcp.Payload)
	} else {
		segCaptured = len(d.udp.Contents) + len(d.udp.Payload)
	}
	if isV4 {
		if len(d.ip4.SrcIP) != 4 || len(d.ip4.DstIP) != 4 {
			return ErrNotTransport
		}
		p.Src = netip.AddrFrom4([4]byte(d.ip4.SrcIP))
		p.Dst = netip.AddrFrom4([4]byte(d.ip4.DstIP))
		l4Len = int(d.ip4.Length) - int(d.ip4.IHL)*4
		if d.ip4.Length == 0xffff && len(d.ip4.Payload) > l4Len {
			l4Len = len(d.ip4.Payload) // TSO frame with a zero length field, clamped by gopacket
		}
	} else {
		if len(d.ip6.SrcIP) != 16 || len(d.ip6.DstIP) != 16 {
			return ErrNotTransport
		}
		p.Src = netip.AddrFrom16([16]byte(d.ip6.SrcIP))
		p.Dst = netip.AddrFrom16([16]byte(d.ip6.DstIP))
		// IPv6 Length counts extension headers; take off the ones between
		// the fixed header and the transport header.
		ext := len(d.ip6.Payload) - segCaptured
		if ext < 0 {
			ext = 0
		}
		l4Len = int(d.ip6.Length) - ext
		if d.ip6.Length == 0 { // jumbogram or GSO: the captured length is all we have
			l4Len = segCaptured
		}
	}
	if isTCP {
		t := &d.tcp
		hdr := int(t.DataOffset) * 4
		p.Proto = TCP
		p.SrcPort, p.DstPort = uint16(t.SrcPort), uint16(t.DstPort)
		p.Seq, p.Ack, p.Window = t.Seq, t.Ack, t.Window
		p.Flags = tcpFlags(t)
		p.PayloadLen = l4Len - hdr
		p.HasTS = false
		for i := range t.Options {
			o := &t.Options[i]
			if o.OptionType == layers.TCPOptionKindTimestamps && len(o.OptionData) == 8 {
				p.HasTS = true
				p.TSval = binary.BigEndian.Uint32(o.OptionData[:4])
				p.TSecr = binary.BigEndian.Uint32(o.OptionData[4:])
			}
		}
		p.Truncated = len(t.Payload) < p.PayloadLen
	} else {
		u := &d.udp
		p.Proto = UDP
		p.SrcPort, p.DstPort = uint16(u.SrcPort), uint16(u.DstPort)
		p.Seq, p.Ack, p.Flags, p.Window, p.HasTS = 0, 0, 0, 0, false
		p.PayloadLen = l4Len - 8
		p.Truncated = len(u.Payload) < p.PayloadLen
	}
	if p.PayloadLen < 0 { // IP length shorter than the transport header: nonsense
		p.PayloadLen = 0
	}
	return nil
}

func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	if t.FIN {
		f |= FlagFIN
	}
	if t.SYN {
		f |= FlagSYN
	}
	if t.RST {
		f |= FlagRST
	}
	if t.PSH {
		f |= FlagPSH
	}
	if t.ACK {
		f |= FlagACK
	}
	if t.URG {
		f |= FlagURG
	}
	return f
}
