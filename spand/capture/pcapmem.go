package capture

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// maxRecord is the longest packet record the pcap readers take when the
// file's snap length is smaller (pcapgo's limit: writers that do not
// truncate to the snap length they declare produce longer records).
const maxRecord = 262144

// pcapMem reads a classic pcap file held in memory (mapped or read whole):
// every packet is a slice of the buffer, nothing is copied or allocated.
// It takes what pcapgo.Reader takes and refuses what it refuses.
type pcapMem struct {
	buf    []byte
	off    int
	big    bool  // big-endian headers
	factor int64 // 1000 for µs timestamps, 1 for ns
	maxCap int
	link   layers.LinkType
}

// newPcapMem parses the file header of b (pcap, any byte order, µs or ns).
func newPcapMem(b []byte) (*pcapMem, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("file header: %w", io.ErrUnexpectedEOF)
	}
	m := &pcapMem{buf: b, off: 24}
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
		m.factor = 1000
	case 0xd4c3b2a1:
		m.factor, m.big = 1000, true
	case 0xa1b23c4d:
		m.factor = 1
	case 0x4d3cb2a1:
		m.factor, m.big = 1, true
	default:
		return nil, fmt.Errorf("unknown magic %x", b[:4])
	}
	if v := m.u16(b[4:]); v != 2 {
		return nil, fmt.Errorf("unknown major version %d", v)
	}
	if v := m.u16(b[6:]); v != 4 {
		return nil, fmt.Errorf("unknown minor version %d", v)
	}
	m.maxCap = max(int(m.u32(b[16:])), maxRecord)
	m.link = layers.LinkType(m.u32(b[20:]))
	return m, nil
}

func (m *pcapMem) u16(b []byte) uint16 {
	if m.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (m *pcapMem) u32(b []byte) uint32 {
	if m.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// next returns the next packet, its capture time in Unix nanoseconds and
// its length on the wire. At the end it returns io.EOF, or
// io.ErrUnexpectedEOF when the last record is cut short.
func (m *pcapMem) next() (data []byte, ts int64, length int, err error) {
	rest := m.buf[m.off:]
	if len(rest) < 16 {
		if len(rest) == 0 {
			return nil, 0, 0, io.EOF
		}
		return nil, 0, 0, io.ErrUnexpectedEOF
	}
	h := rest[:16]
	var sec, frac, caplen, orig uint32
	if m.big {
		sec, frac = binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:])
		caplen, orig = binary.BigEndian.Uint32(h[8:]), binary.BigEndian.Uint32(h[12:])
	} else {
		sec, frac = binary.LittleEndian.Uint32(h), binary.LittleEndian.Uint32(h[4:])
		caplen, orig = binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
	}
	if int64(caplen) > int64(m.maxCap) {
		return nil, 0, 0, fmt.Errorf("capture length exceeds snap length: %d > %d", caplen, m.maxCap)
	}
	if caplen > orig {
		return nil, 0, 0, fmt.Errorf("capture length exceeds original packet length: %d > %d", caplen, orig)
	}
	n := int(caplen)
	if len(rest)-16 < n {
		m.off = len(m.buf)
		return nil, 0, 0, io.ErrUnexpectedEOF
	}
	m.off += 16 + n
	return rest[16 : 16+n : 16+n], int64(sec)*1e9 + int64(frac)*m.factor, int(orig), nil
}

// readPacketData is next in the gopacket form.
func (m *pcapMem) readPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ts, length, err := m.next()
	if err != nil {
		return nil, gopacket.CaptureInfo{}, err
	}
	return data, gopacket.CaptureInfo{
		Timestamp:     time.Unix(0, ts).UTC(),
		CaptureLength: len(data),
		Length:        length,
	}, nil
}
