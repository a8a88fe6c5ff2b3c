package image

import (
	"bytes"
	"context"
	"fmt"
	stdimage "image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// GoEngine is the pure-Go engine (no C library). Its zero value is ready
// to use.
type GoEngine struct{}

var _ Engine = GoEngine{}

// Name returns "go".
func (GoEngine) Name() string { return "go" }

func goCanEncode(f Format) bool { return f == JPEG || f == PNG }

// Transcode implements Engine. It refuses (ErrUnsupported) CMYK JPEGs,
// which it cannot convert to sRGB faithfully without their ICC profile,
// and animations unless opts.Animation is AnimationFirstFrame.
func (GoEngine) Transcode(ctx context.Context, src []byte, info Info, opts Options) (Result, error) {
	if info.CMYK {
		return Result{}, fmt.Errorf("%w: CMYK JPEG needs colour management (vips engine)", ErrUnsupported)
	}
	if info.Frames > 1 && opts.Animation != AnimationFirstFrame {
		return Result{}, fmt.Errorf("%w: animation (%d frames) with policy %s", ErrUnsupported, info.Frames, opts.Animation)
	}
	if !hasCandidate(info, opts, goCanEncode) {
		return Result{}, fmt.Errorf("%w: no acceptable output format the Go engine can write", ErrUnsupported)
	}
	img, err := goDecode(src, info.Format)
	if err != nil {
		return Result{}, fmt.Errorf("decode %s: %w", info.Format, err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	b := img.Bounds()
	// Resize in stored orientation, then orient the small result.
	dw, dh := info.DisplaySize()
	tw, th := FitSize(dw, dh, opts.MaxWidth, opts.MaxHeight)
	if info.Orientation >= 5 {
		tw, th = th, tw
	}
	if b.Dx() != info.Width || b.Dy() != info.Height {
		return Result{}, fmt.Errorf("decode %s: got %v, header said %dx%d", info.Format, b.Size(), info.Width, info.Height)
	}
	rgba := orient(resize(img, tw, th), info.Orientation)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	alpha := !opaque(rgba)
	var out stdimage.Image = rgba
	if opts.Greyscale || (isGreyModel(img.ColorModel()) && isGrey(rgba)) {
		if alpha {
			out = greyAlpha(rgba)
		} else {
			out = toGray(rgba)
		}
	}
	pal, _ := img.(*stdimage.Paletted)
	if opts.Greyscale {
		pal = nil // the source palette would bring the colours back
	}
	var buf bytes.Buffer
	for _, f := range Candidates(info, alpha, opts.Formats, goCanEncode) {
		buf.Reset()
		switch f {
		case JPEG:
			err = jpeg.Encode(&buf, out, &jpeg.Options{Quality: opts.quality()})
		case PNG:
			err = encodePNG(&buf, out, pal)
		}
		if err != nil {
			return Result{}, fmt.Errorf("encode %s: %w", f, err)
		}
		if buf.Len() < len(src) {
			return Result{Body: bytes.Clone(buf.Bytes()), Format: f, Width: rgba.Rect.Dx(), Height: rgba.Rect.Dy(), Frames: 1}, nil
		}
	}
	return Result{}, ErrLarger
}

func hasCandidate(info Info, opts Options, canEncode func(Format) bool) bool {
	// Alpha is not known before decoding: either answer may hold.
	return len(Candidates(info, false, opts.Formats, canEncode)) > 0 ||
		len(Candidates(info, true, opts.Formats, canEncode)) > 0
}

func goDecode(src []byte, f Format) (stdimage.Image, error) {
	r := bytes.NewReader(src)
	switch f {
	case JPEG:
		return jpeg.Decode(r)
	case PNG:
		return png.Decode(r)
	case GIF:
		return gif.Decode(r) // the first frame
	case WebP:
		return webp.Decode(r)
	}
	return nil, fmt.Errorf("%w: format %q", ErrUnsupported, f)
}

func isGreyModel(m color.Model) bool { return m == color.GrayModel || m == color.Gray16Model }

// greyAlpha turns m grey, keeping its alpha (PNG has no grey+alpha type in
// image/png's encoder, so the result stays RGBA).
func greyAlpha(m *stdimage.RGBA) *stdimage.RGBA {
	d := stdimage.NewRGBA(m.Rect)
	for i := 0; i < len(m.Pix); i += 4 {
		y := uint8((19595*uint32(m.Pix[i]) + 38470*uint32(m.Pix[i+1]) + 7471*uint32(m.Pix[i+2]) + 1<<15) >> 16)
		d.Pix[i], d.Pix[i+1], d.Pix[i+2], d.Pix[i+3] = y, y, y, m.Pix[i+3]
	}
	return d
}

// encodePNG writes m as PNG, mapped back onto pal when the source was a
// palette image and pal has room for what the resize produced (line art
// stays a small palette PNG).
func encodePNG(w *bytes.Buffer, m stdimage.Image, pal *stdimage.Paletted) error {
	if pal != nil {
		p := stdimage.NewPaletted(m.Bounds(), pal.Palette)
		draw.Draw(p, p.Rect, m, m.Bounds().Min, draw.Src)
		m = p
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	return enc.Encode(w, m)
}
