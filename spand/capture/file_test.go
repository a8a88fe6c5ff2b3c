package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// TestFileFormats rewrites a corpus capture as pcapng, as nanosecond pcap,
// and gzips of both, and checks every form yields the same connection
// records as the original: the format is told by magic number only.
func TestFileFormats(t *testing.T) {
	path := filepath.Join(testenv.Corpus(t, "pcap"), "zeek-http-bro.org.pcap")
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ng, nano bytes.Buffer
	ngw, err := pcapgo.NewNgWriter(&ng, src.LinkType())
	if err != nil {
		t.Fatal(err)
	}
	nw := pcapgo.NewWriterNanos(&nano)
	if err := nw.WriteFileHeader(65535, src.LinkType()); err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ci.InterfaceIndex = 0
		if err := ngw.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
		if err := nw.WritePacket(gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: len(data), Length: ci.Length}, data); err != nil {
			t.Fatal(err)
		}
	}
	src.Close()
	ngw.Flush()
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		w := gzip.NewWriter(&out)
		w.Write(b)
		w.Close()
		return out.Bytes()
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := trackBytes(t, orig)
	if len(want) != 13 {
		t.Fatalf("%d records from the original", len(want))
	}
	for name, b := range map[string][]byte{
		"pcapng": ng.Bytes(), "pcap-ns": nano.Bytes(), "pcapng.gz": gz(ng.Bytes()), "pcap-ns.gz": gz(nano.Bytes()), "pcap.gz": gz(orig),
	} {
		got := trackBytes(t, b)
		if len(got) != len(want) {
			t.Errorf("%s: %d records, want %d", name, len(got), len(want))
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s record %d:\n got %+v\nwant %+v", name, i, got[i], want[i])
			}
		}
	}
	if _, err := NewFileReader(bytes.NewReader([]byte("GIF89a not a capture"))); !errors.Is(err, ErrFormat) {
		t.Errorf("not a capture: %v", err)
	}
}

func trackBytes(t *testing.T, b []byte) []track.Conn {
	t.Helper()
	src, err := NewFileReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var conns []track.Conn
	tr := track.New(track.Config{Periodic: -1, OnConn: func(c *track.Conn) { conns = append(conns, *c) }})
	if _, err := Run(context.Background(), src, nil, tr); err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	return conns
}
