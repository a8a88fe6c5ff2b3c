package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// endKind classifies how a reader stopped.
func endKind(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "cut short"
	}
	return "error"
}

// comparePcapgo reads b with pcapMem and with pcapgo.Reader and fails on
// any difference: the same packets (bytes, time, length) and the same
// kind of ending.
func comparePcapgo(t *testing.T, b []byte) int {
	t.Helper()
	ref, refErr := pcapgo.NewReader(bytes.NewReader(b))
	m, err := newPcapMem(b)
	if (refErr == nil) != (err == nil) {
		t.Fatalf("header: pcapgo %v, pcapMem %v", refErr, err)
	}
	if err != nil {
		return 0
	}
	if m.link != ref.LinkType() {
		t.Fatalf("link type %v, pcapgo %v", m.link, ref.LinkType())
	}
	for n := 0; ; n++ {
		want, ci, refErr := ref.ZeroCopyReadPacketData()
		got, ts, length, err := m.next()
		if refErr != nil || err != nil {
			// A file ending right after a record header is cut short;
			// pcapgo calls it the end.
			cutAfterHeader := endKind(refErr) == "EOF" && endKind(err) == "cut short"
			if endKind(refErr) != endKind(err) && !cutAfterHeader {
				t.Fatalf("packet %d: pcapgo %v, pcapMem %v", n, refErr, err)
			}
			return n
		}
		// pcapgo multiplies µs by 1000 in 32 bits: out-of-range
		// fractions wrap there, not here.
		if !bytes.Equal(got, want) || length != ci.Length || (ts-ci.Timestamp.UnixNano())%(1<<32) != 0 {
			t.Fatalf("packet %d: got %d bytes, length %d, time %d; pcapgo %d bytes, length %d, time %d",
				n, len(got), length, ts, len(want), ci.Length, ci.Timestamp.UnixNano())
		}
	}
}

// TestPcapMemCorpus: every classic pcap of the corpus reads exactly as
// with pcapgo, also cut short anywhere in its last record.
func TestPcapMemCorpus(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.pcap*"))
	paths = append(paths, "../track/testdata/seeds.pcap")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if len(b) < 4 {
			continue
		}
		if !isPcapMagic(b[:4]) {
			continue
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			if n := comparePcapgo(t, b); n == 0 {
				t.Fatal("no packets")
			}
			for cut := 1; cut < 40 && cut < len(b)-24; cut += 3 {
				comparePcapgo(t, b[:len(b)-cut])
			}
		})
	}
}

// TestOpenFileMapped: OpenFile maps a pcap file and Run reads it in
// place, with the same result as the streaming reader.
func TestOpenFileMapped(t *testing.T) {
	const path = "../track/testdata/seeds.pcap"
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.mem == nil || src.unmap == nil {
		t.Skip("this system has no mmap: OpenFile streams")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stream, err := NewFileReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := trackAll(t, src), trackAll(t, stream); a != b {
		t.Fatalf("mapped: %+v\nstreamed: %+v", a, b)
	}
}

// TestPcapMemHeaderOnlyRecord: a file ending right after a record header
// (found by FuzzPcapReader) is cut short, not complete.
func TestPcapMemHeaderOnlyRecord(t *testing.T) {
	b := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0}
	src, err := NewFileBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	tr := track.New(track.Config{})
	st, err := Run(context.Background(), src, nil, tr)
	if err != nil || !st.CutShort || st.Read != 0 {
		t.Fatalf("Run = %+v, %v; want cut short after 0 packets", st, err)
	}
}

// FuzzPcapReader: pcapMem reads any input exactly as pcapgo does (or
// refuses it as pcapgo does), and never panics.
func FuzzPcapReader(f *testing.F) {
	if b, err := os.ReadFile("../track/testdata/seeds.pcap"); err == nil {
		f.Add(b)
		f.Add(b[:100])
		f.Add(b[:24])
	}
	hdr := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	f.Add(hdr)
	f.Add(append(append([]byte{}, hdr...), 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4))
	f.Add(append(append([]byte{}, hdr...), 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		comparePcapgo(t, b)
	})
}

// trackAll runs src through a tracker and sums up what it produced.
func trackAll(t *testing.T, src Source) string {
	t.Helper()
	var bytes, pkts uint64
	tr := track.New(track.Config{OnConn: func(c *track.Conn) {
		bytes += c.AB.DataBytes + c.BA.DataBytes
		pkts += c.AB.Packets + c.BA.Packets
	}})
	if _, err := Run(context.Background(), src, nil, tr); err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	return fmt.Sprintf("%+v, %d packets and %d bytes in records", tr.Stats(), pkts, bytes)
}
