package capture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Source is a packet source: a capture file, a live interface, or libpcap.
// ReadPacketData returns data that is valid until the next call (zero
// copy where the source allows it).
type Source interface {
	ReadPacketData() (data []byte, ci gopacket.CaptureInfo, err error)
	LinkType() layers.LinkType
	Close() error
}

// ErrFormat is wrapped by OpenFile's error for files that are neither pcap,
// pcapng, nor a gzip of one of them.
var ErrFormat = errors.New("capture: not a pcap or pcapng file")

// File reads a capture file: pcap (any byte order, µs or ns), pcapng, or
// either compressed with gzip. The format is told by the magic number,
// not the file name.
type File struct {
	f    *os.File
	gz   *gzip.Reader
	mem  *pcapMem         // one of mem, pcap and ng is set
	pcap *pcapgo.Reader   // (concrete types: no indirect call per packet)
	ng   *pcapgo.NgReader //
	link layers.LinkType

	unmap func() error // set when the file is mapped into memory
}

// OpenFile opens the capture file at path. A regular file is mapped into
// memory where the system allows it, and packets of a pcap file are then
// read in place, without a copy (NewFileBytes); a pcap file must not be
// truncated while it is being read (appending to it is fine). Anything
// else (pipes, systems without mmap) is read as a stream (NewFileReader).
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && int64(int(fi.Size())) == fi.Size() {
		if b, unmap, err := mapFile(f, int(fi.Size())); err == nil {
			f.Close() // the mapping stays
			src, err := NewFileBytes(b)
			if err != nil {
				unmap()
				return nil, fmt.Errorf("capture: %s: %w", path, err)
			}
			src.unmap = unmap
			return src, nil
		}
	}
	src, err := NewFileReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: %s: %w", path, err)
	}
	src.f = f
	return src, nil
}

// NewFileBytes reads a capture held in memory (see File). The packets of
// a pcap file are slices of b, neither copied nor allocated; pcapng and
// gzip-compressed files are read as from NewFileReader. b must not change
// until the File is done with.
func NewFileBytes(b []byte) (*File, error) {
	if len(b) >= 4 && isPcapMagic(b[:4]) {
		m, err := newPcapMem(b)
		if err != nil {
			return nil, fmt.Errorf("pcap: %w", err)
		}
		return &File{mem: m, link: m.link}, nil
	}
	return NewFileReader(bytes.NewReader(b))
}

// NewFileReader reads a capture from r (see File).
func NewFileReader(r io.Reader) (*File, error) {
	src := &File{}
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		src.gz = gz
		br = bufio.NewReaderSize(gz, 1<<20)
		if magic, err = br.Peek(4); err != nil {
			return nil, fmt.Errorf("%w: inside gzip: %v", ErrFormat, err)
		}
	}
	switch {
	case bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}):
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		src.ng, src.link = ng, ng.LinkType()
	case isPcapMagic(magic):
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap: %w", err)
		}
		src.pcap, src.link = pr, pr.LinkType()
	default:
		return nil, fmt.Errorf("%w (magic % x)", ErrFormat, magic)
	}
	return src, nil
}

func isPcapMagic(m []byte) bool {
	for _, v := range [][]byte{
		{0xa1, 0xb2, 0xc3, 0xd4}, {0xd4, 0xc3, 0xb2, 0xa1}, // µs
		{0xa1, 0xb2, 0x3c, 0x4d}, {0x4d, 0x3c, 0xb2, 0xa1}, // ns
	} {
		if bytes.Equal(m, v) {
			return true
		}
	}
	return false
}

// ReadPacketData returns the next packet; the data is valid until the next
// call. It returns io.EOF at the end of the file.
func (s *File) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	if s.mem != nil {
		return s.mem.readPacketData()
	}
	if s.pcap != nil {
		return s.pcap.ZeroCopyReadPacketData()
	}
	return s.ng.ZeroCopyReadPacketData()
}

// LinkType is the capture's link type (of the first interface for pcapng).
func (s *File) LinkType() layers.LinkType { return s.link }

// Close closes the file. Packet data read from it is invalid afterwards.
func (s *File) Close() error {
	if s.gz != nil {
		s.gz.Close()
	}
	if s.unmap != nil {
		u := s.unmap
		s.unmap, s.mem = nil, nil
		return u()
	}
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
