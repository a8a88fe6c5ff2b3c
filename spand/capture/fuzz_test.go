package capture

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// FuzzCompileBuiltin: no expression makes the compiler panic, and what it
// accepts is a valid program the VM runs.
func FuzzCompileBuiltin(f *testing.F) {
	for _, e := range filterExprs {
		f.Add(e)
	}
	frame := testFrames(f)[layers.LinkTypeEthernet]
	f.Fuzz(func(t *testing.T, expr string) {
		for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeNull} {
			if flt, err := CompileBuiltin(expr, lt); err == nil {
				flt.Match(frame, len(frame))
			}
		}
	})
}

// FuzzFileReader: any file content is read (or refused) without a panic,
// and whatever it yields goes through the tracker.
func FuzzFileReader(f *testing.F) {
	if b, err := os.ReadFile("../track/testdata/seeds.pcap"); err == nil {
		f.Add(b)
		f.Add(b[:100])
	}
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0})
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := NewFileReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		tr := track.New(track.Config{MaxConns: 16})
		Run(context.Background(), src, nil, tr)
		tr.Flush()
	})
}
