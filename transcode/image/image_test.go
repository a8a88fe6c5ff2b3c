package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdimage "image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// testEngines lists the engines of this build; vips_test.go adds libvips.
var testEngines = []Engine{GoEngine{}}

const bombFile = "thumbor__9643x10328.jpg"

// corpusFiles returns the image corpus (without the bomb) keyed by name.
func corpusFiles(t testing.TB) map[string][]byte {
	t.Helper()
	dir := testenv.Corpus(t, "images")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if e.Name() == "README.md" || e.Name() == bombFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	if len(files) < 15 {
		t.Fatalf("corpus has %d images, want 15", len(files))
	}
	return files
}

func TestProbeCorpus(t *testing.T) {
	files := corpusFiles(t)
	want := map[string]Info{
		"bimg__test_exif_full.jpg":                     {Format: JPEG, Width: 4032, Height: 3024, Frames: 1, Orientation: 6, ICC: true},
		"sharp__Channel_digital_image_CMYK_color.jpg":  {Format: JPEG, Width: 500, Height: 333, Frames: 1, Orientation: 1, CMYK: true, ICC: true},
		"imagor__jpg-24bit-icc-adobe-rgb.jpg":          {Format: JPEG, Width: 1900, Height: 1263, Frames: 1, Orientation: 1, ICC: true},
		"sharp__alpha-premultiply-2048x1536-paper.png": {Format: PNG, Width: 2048, Height: 1536, Frames: 1, Orientation: 1, Alpha: true},
		"sharp__50020484-00001.png":                    {Format: PNG, Width: 2809, Height: 2074, Frames: 1, Orientation: 1, LineArt: true},
		"bimg__test.gif":                               {Format: GIF, Width: 703, Height: 681, Frames: 24, Orientation: 1, Alpha: true, LineArt: true},
		"sharp__Crash_test.gif":                        {Format: GIF, Width: 800, Height: 533, Frames: 1, Orientation: 1, Alpha: true},
		"sharp__4.webp":                                {Format: WebP, Width: 1024, Height: 772, Frames: 1, Orientation: 1},
		"bimg__vertical.jpg":                           {Format: JPEG, Width: 4000, Height: 6000, Frames: 1, Orientation: 1, ICC: true},
	}
	for name, w := range want {
		got, err := Probe(files[name])
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, w)
		}
	}
	bomb := testenv.ReadCorpus(t, "images", bombFile)
	if info, err := Probe(bomb); err != nil || info.Pixels() != 9643*10328 {
		t.Errorf("bomb: %+v, %v", info, err)
	}
}

func TestProbeGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("GIF89a"), []byte("\xff\xd8\xff\xe0garbage"), bytes.Repeat([]byte{0x89}, 100)} {
		if _, err := Probe(b); !errors.Is(err, ErrNotImage) {
			t.Errorf("Probe(%q) err = %v, want ErrNotImage", b, err)
		}
	}
}

func TestFitSize(t *testing.T) {
	tests := []struct{ w, h, mw, mh, tw, th int }{
		{4000, 6000, 800, 0, 800, 1200},
		{4000, 6000, 800, 800, 533, 800},
		{500, 333, 800, 0, 500, 333}, // never upscale
		{1920, 1080, 0, 0, 1920, 1080},
		{3, 10000, 800, 100, 1, 100},
	}
	for _, tt := range tests {
		if w, h := FitSize(tt.w, tt.h, tt.mw, tt.mh); w != tt.tw || h != tt.th {
			t.Errorf("FitSize(%d,%d,%d,%d) = %d,%d want %d,%d", tt.w, tt.h, tt.mw, tt.mh, w, h, tt.tw, tt.th)
		}
	}
}

type testProfile struct {
	name string
	opts Options
}

var testProfiles = []testProfile{
	{"800w-q40-jpeg", Options{MaxWidth: 800, Quality: 40, Formats: []Format{JPEG}, StripMetadata: true}},
	{"800w-q40-webp", Options{MaxWidth: 800, Quality: 40, Formats: []Format{WebP, JPEG}, StripMetadata: true, Animation: AnimationKeep}},
	{"400box-grey-first", Options{MaxWidth: 400, MaxHeight: 400, Quality: 50, Formats: []Format{JPEG}, Greyscale: true, Animation: AnimationFirstFrame}},
	{"2000w-source-q75", Options{MaxWidth: 2000, StripMetadata: true}}, // no resize for files up to 2000 px wide
}

// TestTranscodeCorpus runs every engine on every corpus file with every
// test profile and checks the rules that must always hold.
func TestTranscodeCorpus(t *testing.T) {
	files := corpusFiles(t)
	for _, eng := range testEngines {
		for _, p := range testProfiles {
			for name, src := range files {
				t.Run(eng.Name()+"/"+p.name+"/"+name, func(t *testing.T) {
					info, err := Probe(src)
					if err != nil {
						t.Fatal(err)
					}
					res, err := eng.Transcode(context.Background(), src, info, p.opts)
					if err != nil {
						checkRefusal(t, eng, info, p.opts, err)
						return
					}
					checkResult(t, src, info, p.opts, res)
				})
			}
		}
	}
}

// checkRefusal accepts only the refusals the engines document.
func checkRefusal(t *testing.T, eng Engine, info Info, opts Options, err error) {
	t.Helper()
	switch {
	case errors.Is(err, ErrLarger):
		t.Logf("passed: %v", err)
	case errors.Is(err, ErrUnsupported) && info.CMYK && eng.Name() == "go":
	case errors.Is(err, ErrUnsupported) && eng.Name() == "go" && len(opts.Formats) == 0 && !goCanEncode(info.Format):
	case errors.Is(err, ErrUnsupported) && info.Frames > 1 && (opts.Animation == AnimationPass || eng.Name() == "go" && opts.Animation == AnimationKeep):
	default:
		t.Fatalf("unexpected error: %v", err)
	}
}

func checkResult(t *testing.T, src []byte, info Info, opts Options, res Result) {
	t.Helper()
	if len(res.Body) >= len(src) {
		t.Fatalf("output %d bytes >= input %d", len(res.Body), len(src))
	}
	out, err := Probe(res.Body)
	if err != nil {
		t.Fatalf("output does not probe: %v", err)
	}
	if out.Format != res.Format {
		t.Errorf("output is %s, result says %s", out.Format, res.Format)
	}
	if out.Orientation != 1 {
		t.Errorf("output keeps EXIF orientation %d", out.Orientation)
	}
	if len(opts.Formats) > 0 && !formatAllowed(res.Format, opts.Formats, info) {
		t.Errorf("output format %s not in %v", res.Format, opts.Formats)
	}
	dw, dh := info.DisplaySize()
	tw, th := FitSize(dw, dh, opts.MaxWidth, opts.MaxHeight)
	if abs(out.Width-tw) > 1 || abs(out.Height-th*max(out.Frames, 1)/max(res.Frames, 1)) > 1 {
		t.Errorf("output %dx%d (%d frames), want %dx%d", out.Width, out.Height, out.Frames, tw, th)
	}
	if info.Alpha && info.Format == PNG && res.Format == JPEG {
		t.Errorf("alpha PNG became JPEG")
	}
	if res.Frames > 1 {
		if out.Frames != res.Frames && res.Format == WebP {
			t.Errorf("animated output has %d frames, result says %d", out.Frames, res.Frames)
		}
		return // x/image/webp does not decode animations
	}
	img, err := decode(res.Body)
	if err != nil {
		t.Fatalf("output does not decode: %v", err)
	}
	if info.Format == PNG && info.Alpha && strings.Contains(t.Name(), "alpha") && isOpaque(img) {
		t.Errorf("transparency lost")
	}
	if opts.Greyscale && !isGreyImage(img) {
		t.Errorf("greyscale profile, colour output")
	}
	t.Logf("%s %dx%d %d bytes (from %d)", res.Format, out.Width, out.Height, len(res.Body), len(src))
}

// isGreyImage reports whether every pixel's channels are within 4 levels
// of each other (lossy coding leaves a little chroma noise).
func isGreyImage(m stdimage.Image) bool {
	b := m.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := m.At(x, y).RGBA()
			if max(r, g, bl)>>8-min(r, g, bl)>>8 > 4 {
				return false
			}
		}
	}
	return true
}

func formatAllowed(f Format, allowed []Format, info Info) bool {
	for _, a := range allowed {
		if a == f || a == JPEG && f == PNG { // PNG stands in for JPEG with alpha or line art
			return true
		}
	}
	return info.LineArt && f == PNG
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func decode(b []byte) (stdimage.Image, error) {
	info, err := Probe(b)
	if err != nil {
		return nil, err
	}
	return goDecode(b, info.Format)
}

func isOpaque(m stdimage.Image) bool {
	b := m.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if _, _, _, a := m.At(x, y).RGBA(); a != 0xffff {
				return false
			}
		}
	}
	return true
}

// psnr returns the peak signal-to-noise ratio in dB of b against a over
// their RGB channels (8-bit scale); the images must have the same size.
func psnr(a, b stdimage.Image) (float64, error) {
	ra, rb := a.Bounds(), b.Bounds()
	if ra.Size() != rb.Size() {
		return 0, fmt.Errorf("sizes differ: %v vs %v", ra.Size(), rb.Size())
	}
	var se float64
	for y := 0; y < ra.Dy(); y++ {
		for x := 0; x < ra.Dx(); x++ {
			r1, g1, b1, _ := a.At(ra.Min.X+x, ra.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(rb.Min.X+x, rb.Min.Y+y).RGBA()
			for _, d := range []float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				se += d * d
			}
		}
	}
	mse := se / float64(3*ra.Dx()*ra.Dy())
	if mse == 0 {
		return math.Inf(1), nil
	}
	return 10 * math.Log10(255*255/mse), nil
}

// vipsReference makes a colour-managed sRGB reference of file at exactly
// w×h with `vipsthumbnail --export-profile srgb` (Debian libvips-tools).
// Without managed (an untagged source) the export profile is left out: on
// an untagged image it applies a perceptual-intent sRGB→sRGB transform that
// shifts colours by several levels.
func vipsReference(t *testing.T, file string, w, h int, managed bool) stdimage.Image {
	t.Helper()
	bin := testenv.LookPath(t, "vipsthumbnail", "libvips-tools")
	out := filepath.Join(t.TempDir(), "ref.png")
	// Fit inside w×h first, as the engines do; force the exact size only
	// when rounding made the sizes differ.
	var img stdimage.Image
	for _, size := range []string{fmt.Sprintf("%dx%d", w, h+1), fmt.Sprintf("%dx%d!", w, h)} {
		args := []string{file, "-s", size, "-o", out}
		if managed {
			args = append(args, "--export-profile", "srgb")
		}
		cmd := exec.Command(bin, args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = decode(b); err != nil {
			t.Fatal(err)
		}
		if img.Bounds().Dx() == w && img.Bounds().Dy() == h {
			break
		}
	}
	return img
}

// colourFiles are compared with vipsthumbnail's colour-managed output.
// minGo is the PSNR the Go engine must reach: it ignores ICC profiles, so
// wide-gamut photos lose a little saturation, but a wrong orientation,
// channel order or resize drops far below.
var colourFiles = []struct {
	name  string
	minGo float64 // 0: the Go engine refuses this file
}{
	{"sharp__Channel_digital_image_CMYK_color.jpg", 0},
	{"imagor__jpg-24bit-icc-adobe-rgb.jpg", 22},
	{"bimg__test_exif_full.jpg", 25},
	{"bimg__vertical.jpg", 28},
	{"imagor__people.jpg", 28},
	{"sharp__4.webp", 24},
	{"thumbor__Giunchedi_Filippo_January_2015_01.png", 28},
}

// MinVipsPSNR is what the vips engine must reach on every colour file:
// colours converted from CMYK, Adobe RGB and Display P3 to sRGB as libvips'
// own tool does.
const MinVipsPSNR = 35

func TestColours(t *testing.T) {
	dir := testenv.Corpus(t, "images")
	opts := Options{MaxWidth: 600, Quality: 90, Formats: []Format{JPEG}, StripMetadata: true}
	for _, eng := range testEngines {
		for _, cf := range colourFiles {
			t.Run(eng.Name()+"/"+cf.name, func(t *testing.T) {
				file := filepath.Join(dir, cf.name)
				src, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				info, err := Probe(src)
				if err != nil {
					t.Fatal(err)
				}
				res, err := eng.Transcode(context.Background(), src, info, opts)
				if eng.Name() == "go" && cf.minGo == 0 {
					if !errors.Is(err, ErrUnsupported) {
						t.Fatalf("Go engine on CMYK: err = %v, want ErrUnsupported (pass the original)", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				img, err := decode(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				ref := vipsReference(t, file, img.Bounds().Dx(), img.Bounds().Dy(), info.ICC || info.CMYK)
				p, err := psnr(ref, img)
				if err != nil {
					t.Fatal(err)
				}
				min := cf.minGo
				if eng.Name() == "vips" {
					min = MinVipsPSNR
				}
				t.Logf("PSNR %.1f dB (%dx%d)", p, img.Bounds().Dx(), img.Bounds().Dy())
				if p < min {
					t.Errorf("PSNR %.1f dB against vipsthumbnail --export-profile srgb, want >= %.0f", p, min)
				}
			})
		}
	}
}
