package capture

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// BenchmarkReadEcho reads the decompressed echo capture from memory with
// File (pcapgo): the per-packet cost of the file source alone.
func BenchmarkReadEcho(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(testenv.Corpus(b, "pcap"), "zeek-echo-connections.pcap.gz"))
	if err != nil {
		b.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	pcap, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		f, err := NewFileReader(bytes.NewReader(pcap))
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, _, err := f.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/packet")
}
