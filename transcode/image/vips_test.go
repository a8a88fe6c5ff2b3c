//go:build vips

package image

import (
	"context"
	"errors"
	"testing"
)

func init() { testEngines = append(testEngines, NewVipsEngine(0)) }

// Found by FuzzImage: a GIF whose logical screen says 40x30 but which
// libvips' loader reads as 7680x43264 (332 MP, several seconds of work).
// The pixel limit was checked against Go's figures, so the vips engine must
// refuse when libvips disagrees.
func TestVipsHeaderDisagrees(t *testing.T) {
	src := []byte("GIF89a(\x00\x1e\x00\x00\x00\x00!\xff\vNETSCAPE2.0\x03\x01\x00\x00\x00!\xf9\x04\x01\n\x00\x02\x00,\x00\x00\x00(\x00\x1e\x00\x81\x00\x00\xeb\xff\xff\xff\x00\x00\x00\x00\x00\x00\x02!\x84")
	info, err := Probe(src)
	if err != nil || info.Width != 40 || info.Height != 30 {
		t.Fatalf("Probe = %+v, %v", info, err)
	}
	_, err = NewVipsEngine(0).Transcode(context.Background(), src, info, Options{MaxWidth: 16, Formats: []Format{JPEG}, Animation: AnimationFirstFrame})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}
