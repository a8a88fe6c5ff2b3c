package track_test

import (
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

type memFrame struct {
	data []byte
	ts   int64
}

// loadFrames decompresses and reads a whole capture into memory, so that
// the benchmark times decoding and tracking only.
func loadFrames(b *testing.B, name string) ([]memFrame, *track.Decoder) {
	src, err := capture.OpenFile(filepath.Join(testenv.Corpus(b, "pcap"), name))
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var frames []memFrame
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		frames = append(frames, memFrame{append([]byte(nil), data...), ci.Timestamp.UnixNano()})
	}
	dec, err := track.NewDecoder(src.LinkType())
	if err != nil {
		b.Fatal(err)
	}
	return frames, dec
}

// BenchmarkTrackEcho decodes and tracks zeek-echo-connections (82,582
// packets, 500 connections) from memory. One op is one packet, so ns/op
// is the cost per packet and allocs/op (with -benchmem) the allocations
// per packet; the tracker is flushed each time the file wraps around.
func BenchmarkTrackEcho(b *testing.B) {
	frames, dec := loadFrames(b, "zeek-echo-connections.pcap.gz")
	var conns int
	tr := track.New(track.Config{Periodic: -1, OnConn: func(*track.Conn) { conns++ }})
	// One pass first: the table, map and free list reach their steady size.
	for _, f := range frames {
		tr.Frame(dec, f.data, f.ts)
	}
	tr.Flush()
	b.ResetTimer()
	b.ReportAllocs()
	cpu0 := testenv.CPUTime()
	i := 0
	for b.Loop() {
		f := &frames[i]
		tr.Frame(dec, f.data, f.ts)
		if i++; i == len(frames) {
			i = 0
			tr.Flush()
		}
	}
	reportRates(b, cpu0)
	if conns == 0 {
		b.Fatal("no connections")
	}
}

// BenchmarkDecodeEcho is the decoder alone on the same packets, with its
// fast path and with the DecodingLayerParser alone.
func BenchmarkDecodeEcho(b *testing.B) {
	b.Run("fast", func(b *testing.B) { benchDecode(b, true) })
	b.Run("parser", func(b *testing.B) { benchDecode(b, false) })
}

func benchDecode(b *testing.B, fast bool) {
	frames, dec := loadFrames(b, "zeek-echo-connections.pcap.gz")
	dec.SetFast(fast)
	var p track.Packet
	b.ResetTimer()
	b.ReportAllocs()
	cpu0 := testenv.CPUTime()
	i := 0
	for b.Loop() {
		if err := dec.Decode(frames[i].data, &p); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(frames) {
			i = 0
		}
	}
	reportRates(b, cpu0)
}

func reportRates(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
	cpu := testenv.CPUTime() - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/packet")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "packets/cpu-s")
}
