package capture

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// BenchmarkReadEcho reads the decompressed echo capture from memory, in
// place (NewFileBytes, as OpenFile does for a mapped file) and as a stream
// (NewFileReader, pcapgo): the per-packet cost of the file source alone.
func BenchmarkReadEcho(b *testing.B) {
	read := func(f *File) error { _, _, err := f.ReadPacketData(); return err }
	b.Run("mem", func(b *testing.B) {
		benchRead(b, NewFileBytes, read)
	})
	b.Run("mem-run", func(b *testing.B) { // what RunProgress calls for it
		benchRead(b, NewFileBytes, func(f *File) error { _, _, _, err := f.mem.next(); return err })
	})
	b.Run("stream", func(b *testing.B) {
		benchRead(b, func(pcap []byte) (*File, error) { return NewFileReader(bytes.NewReader(pcap)) }, read)
	})
}

func benchRead(b *testing.B, open func([]byte) (*File, error), read func(*File) error) {
	raw := testenv.ReadCorpus(b, "pcap", "zeek-echo-connections.pcap.gz")
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
		f, err := open(pcap)
		if err != nil {
			b.Fatal(err)
		}
		for {
			err := read(f)
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
