//go:build vips

package image

import (
	"context"
	"fmt"
	"sync"

	"github.com/davidbyttow/govips/v2/vips"
)

// VipsEngine transcodes with libvips (github.com/davidbyttow/govips/v2,
// built with the tag vips). Use NewVipsEngine; libvips is started once per
// process and never stopped.
type VipsEngine struct{}

var _ Engine = VipsEngine{}

// DefaultVipsThreads is the libvips worker threads per image operation
// (VIPS_CONCURRENCY). One thread per transcode, with the caller's
// semaphore allowing one transcode per core, keeps every core busy without
// oversubscribing them.
const DefaultVipsThreads = 1

var vipsOnce sync.Once

// NewVipsEngine starts libvips with threads worker threads per operation
// (DefaultVipsThreads when 0), no operation cache (every body is new), and
// its logging limited to errors. Only the first call's threads count.
func NewVipsEngine(threads int) VipsEngine {
	vipsOnce.Do(func() {
		if threads <= 0 {
			threads = DefaultVipsThreads
		}
		vips.LoggingSettings(nil, vips.LogLevelError)
		vips.Startup(&vips.Config{ConcurrencyLevel: threads, MaxCacheFiles: 0, MaxCacheMem: 0, MaxCacheSize: 0})
	})
	return VipsEngine{}
}

// Name returns "vips".
func (VipsEngine) Name() string { return "vips" }

func vipsCanEncode(f Format) bool { return f == JPEG || f == PNG || f == WebP || f == GIF }

// Transcode implements Engine with a shrink-on-load thumbnail (JPEG and
// WebP decode at 1/2, 1/4 or 1/8 scale when the target allows), EXIF
// auto-rotation, and conversion of any ICC profile to sRGB.
func (e VipsEngine) Transcode(ctx context.Context, src []byte, info Info, opts Options) (Result, error) {
	NewVipsEngine(0)
	animated := info.Frames > 1
	if animated && opts.Animation == AnimationPass {
		return Result{}, fmt.Errorf("%w: animation (%d frames) with policy pass", ErrUnsupported, info.Frames)
	}
	if !hasCandidate(info, opts, vipsCanEncode) {
		return Result{}, fmt.Errorf("%w: no acceptable output format", ErrUnsupported)
	}
	if err := vipsCheckHeader(src, info); err != nil {
		return Result{}, err
	}
	dw, dh := info.DisplaySize()
	tw, th := FitSize(dw, dh, opts.MaxWidth, opts.MaxHeight)
	params := vips.NewImportParams()
	params.FailOnError.Set(false) // a truncated JPEG still decodes, as browsers show it
	keep := animated && opts.Animation == AnimationKeep
	if keep {
		params.NumPages.Set(-1)
	}
	// Thumbnail fits inside tw×th; one pixel of slack on the other side
	// keeps rounding from shaving a pixel off the limited side.
	img, err := vips.LoadThumbnailFromBuffer(src, tw, th+1, vips.InterestingNone, vips.SizeDown, params)
	if err != nil {
		return Result{}, fmt.Errorf("vips thumbnail: %w", err)
	}
	defer img.Close()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if img.HasICCProfile() {
		if err := img.TransformICCProfile(vips.SRGBIEC6196621ICCProfilePath); err != nil {
			return Result{}, fmt.Errorf("vips icc to sRGB: %w", err)
		}
	}
	if opts.Greyscale {
		if err := img.ToColorSpace(vips.InterpretationBW); err != nil {
			return Result{}, fmt.Errorf("vips greyscale: %w", err)
		}
	}
	alpha := img.HasAlpha()
	frames := 1
	if keep {
		frames = max(img.Pages(), 1)
	}
	candidates := Candidates(info, alpha, opts.Formats, vipsCanEncode)
	if keep {
		// Only WebP and GIF animate: animated WebP when acceptable, else
		// GIF, which every client that asked for the original decodes.
		candidates = candidates[:0]
		for _, f := range opts.Formats {
			if f == WebP {
				candidates = append(candidates, WebP)
			}
		}
		candidates = append(candidates, GIF)
	}
	for _, f := range candidates {
		if !keep && f == GIF {
			continue
		}
		body, err := vipsExport(img, f, opts, info.LineArt)
		if err != nil {
			return Result{}, fmt.Errorf("vips %s export: %w", f, err)
		}
		if len(body) < len(src) {
			h := img.Height()
			if keep {
				h = img.PageHeight()
			}
			return Result{Body: body, Format: f, Width: img.Width(), Height: h, Frames: frames}, nil
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
	}
	return Result{}, ErrLarger
}

func vipsExport(img *vips.ImageRef, f Format, opts Options, lineArt bool) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	q := opts.quality()
	switch f {
	case JPEG:
		b, _, err = img.ExportJpeg(&vips.JpegExportParams{StripMetadata: opts.StripMetadata, Quality: q, OptimizeCoding: true, Interlace: true})
	case WebP:
		b, _, err = img.ExportWebp(&vips.WebpExportParams{StripMetadata: opts.StripMetadata, Quality: q, ReductionEffort: 4, Lossless: lineArt})
	case PNG:
		p := &vips.PngExportParams{StripMetadata: opts.StripMetadata, Compression: 9, Filter: vips.PngFilterAll}
		if lineArt {
			p.Palette, p.Quality, p.Bitdepth = true, 100, 8
		}
		b, _, err = img.ExportPng(p)
	case GIF:
		b, _, err = img.ExportGIF(&vips.GifExportParams{StripMetadata: opts.StripMetadata, Quality: q, Effort: 4, Bitdepth: 8})
	default:
		return nil, fmt.Errorf("%w: output %s", ErrUnsupported, f)
	}
	return b, err
}

// vipsCheckHeader opens src lazily (libvips reads the header only) and
// refuses it when libvips sees another size than Probe did: the caller's
// pixel limit was checked against Probe's figures, and a crafted GIF can
// read as 40x30 to Go and 7680x43264 to libvips (found by FuzzImage).
func vipsCheckHeader(src []byte, info Info) error {
	hdr, err := vips.LoadImageFromBuffer(src, vips.NewImportParams())
	if err != nil {
		return fmt.Errorf("vips header: %w", err)
	}
	defer hdr.Close()
	if hdr.Width() != info.Width || hdr.Height() != info.Height {
		return fmt.Errorf("%w: libvips reads %dx%d, the header says %dx%d",
			ErrUnsupported, hdr.Width(), hdr.Height(), info.Width, info.Height)
	}
	return nil
}
