package transcode

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	timage "github.com/edgeadapt/edgeadapt/transcode/image"
)

// smallImages returns tiny seeds in every input format the Go encoders
// write, plus a hand-made EXIF-rotated JPEG.
func smallImages(t testing.TB) [][]byte {
	m := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			m.Set(x, y, color.NRGBA{uint8(6 * x), uint8(8 * y), 90, uint8(255 - x)})
		}
	}
	var seeds [][]byte
	var b bytes.Buffer
	png.Encode(&b, m)
	seeds = append(seeds, bytes.Clone(b.Bytes()))
	b.Reset()
	jpeg.Encode(&b, m, &jpeg.Options{Quality: 90})
	j := b.Bytes()
	seeds = append(seeds, bytes.Clone(j))
	// APP1 Exif, big-endian TIFF, one IFD entry: Orientation = 6.
	exif := []byte("\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")
	seeds = append(seeds, append(append([]byte{0xff, 0xd8}, exif...), j[2:]...))
	b.Reset()
	pal := image.NewPaletted(m.Rect, []color.Color{color.Black, color.White, color.Transparent})
	g := &gif.GIF{Image: []*image.Paletted{pal, pal}, Delay: []int{10, 10}}
	gif.EncodeAll(&b, g)
	seeds = append(seeds, bytes.Clone(b.Bytes()))
	return seeds
}

func TestExifSeedRotates(t *testing.T) {
	seed := smallImages(t)[2]
	info, err := timage.Probe(seed)
	if err != nil || info.Orientation != 6 {
		t.Fatalf("probe: %+v %v", info, err)
	}
	out, err := Transcode(context.Background(), Input{Bytes: seed, Header: http.Header{"Content-Type": {"image/jpeg"}}},
		Profile{Quality: 30, Formats: []timage.Format{timage.JPEG}}, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := timage.Probe(out.Body)
	if got.Width != 30 || got.Height != 40 || got.Orientation != 1 {
		t.Errorf("rotated output %+v, want 30x40 without orientation", got)
	}
}

// FuzzImage feeds corrupt images to the image path: it must never panic or
// hang, and must either shrink the body or hand back the original.
func FuzzImage(f *testing.F) {
	for _, s := range smallImages(f) {
		f.Add(s)
	}
	if dir := os.Getenv("EDGEADAPT_FUZZ_CORPUS"); dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "sharp__4.webp")); err == nil {
			f.Add(b)
		}
	}
	tr := &Transcoder{Limits: Limits{MaxPixels: 1 << 20}}
	p := Profile{MaxWidth: 16, Quality: 30, Animation: timage.AnimationFirstFrame}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		for _, ct := range []string{"image/jpeg", "image/webp"} {
			out, err := tr.Transcode(context.Background(), Input{Bytes: in, Header: http.Header{"Content-Type": {ct}}, Accept: "image/webp"}, p)
			if !bytes.Equal(in, orig) {
				t.Fatal("input modified")
			}
			if err != nil {
				if !bytes.Equal(out.Body, in) {
					t.Fatal("pass without the original body")
				}
				continue
			}
			if len(out.Body) >= len(in) {
				t.Fatalf("output %d >= input %d", len(out.Body), len(in))
			}
			if _, err := timage.Probe(out.Body); err != nil {
				t.Fatalf("output does not probe: %v", err)
			}
		}
	})
}
