package image

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Format is an image file format.
type Format string

// Formats handled by the engines.
const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
	GIF  Format = "gif"
	WebP Format = "webp"
)

// MIME returns the media type of the format ("image/jpeg").
func (f Format) MIME() string { return "image/" + string(f) }

// ParseFormat maps "jpeg", "jpg", "image/jpeg", "png", "gif", "webp" (any
// case) to a Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "jpeg", "jpg", "image/jpeg", "JPEG", "JPG":
		return JPEG, nil
	case "png", "image/png", "PNG":
		return PNG, nil
	case "gif", "image/gif", "GIF":
		return GIF, nil
	case "webp", "image/webp", "WEBP", "WebP":
		return WebP, nil
	}
	return "", fmt.Errorf("image: unknown format %q", s)
}

// AnimationPolicy says what to do with an animated image (more than one
// frame).
type AnimationPolicy int

const (
	// AnimationPass returns ErrUnsupported so the caller passes the
	// original. It is the zero value: re-encoding animations rarely pays.
	AnimationPass AnimationPolicy = iota
	// AnimationKeep keeps every frame (vips engine only; GoEngine refuses).
	AnimationKeep
	// AnimationFirstFrame keeps only the first frame, as a still image.
	AnimationFirstFrame
)

// String returns "pass", "keep" or "first-frame".
func (p AnimationPolicy) String() string {
	switch p {
	case AnimationKeep:
		return "keep"
	case AnimationFirstFrame:
		return "first-frame"
	}
	return "pass"
}

// ParseAnimationPolicy parses "pass", "keep" or "first-frame" ("" = pass).
func ParseAnimationPolicy(s string) (AnimationPolicy, error) {
	switch s {
	case "", "pass":
		return AnimationPass, nil
	case "keep":
		return AnimationKeep, nil
	case "first-frame", "first":
		return AnimationFirstFrame, nil
	}
	return 0, fmt.Errorf("image: unknown animation policy %q (want pass, keep or first-frame)", s)
}

// Options says what to produce.
type Options struct {
	// MaxWidth and MaxHeight bound the output (0 = unbounded). The aspect
	// ratio is kept and an image is never enlarged.
	MaxWidth, MaxHeight int
	// Quality is the lossy quality 1-100 (DefaultQuality when 0).
	Quality int
	// Formats lists the acceptable output formats, best first (already
	// filtered by the request's Accept). Empty means the source format.
	// JPEG is skipped for images with transparency and lossy formats for
	// line art (see Candidates).
	Formats []Format
	// Greyscale converts the output to shades of grey.
	Greyscale bool
	// StripMetadata drops EXIF, XMP and comments (orientation is applied
	// first, the colour profile converted to sRGB). GoEngine always strips.
	StripMetadata bool
	// Animation says what to do with an animated image.
	Animation AnimationPolicy
}

// DefaultQuality is the lossy quality used when Options.Quality is zero.
const DefaultQuality = 75

func (o Options) quality() int {
	if o.Quality <= 0 || o.Quality > 100 {
		return DefaultQuality
	}
	return o.Quality
}

// Result is an engine's output.
type Result struct {
	Body          []byte
	Format        Format
	Width, Height int // as displayed (orientation applied)
	Frames        int // 1 for a still image
}

// Engine transcodes one image. Implementations are safe for concurrent use;
// the caller bounds concurrency and checks Info against its pixel limit
// before calling.
type Engine interface {
	// Name is "go" or "vips".
	Name() string
	// Transcode returns src re-encoded as opts says, strictly smaller than
	// src, or an error: ErrLarger when no acceptable format came out
	// smaller, ErrUnsupported for an input it will not handle (the caller
	// passes the original in both cases). ctx is checked between stages;
	// a decode in progress is not interrupted.
	Transcode(ctx context.Context, src []byte, info Info, opts Options) (Result, error)
}

// Errors returned by engines. Callers pass the original on any error.
var (
	ErrLarger      = errors.New("image: no output smaller than the input")
	ErrUnsupported = errors.New("image: input not supported by this engine")
)

// FitSize returns the size of a w×h image scaled to fit maxW×maxH (0 =
// unbounded), keeping the aspect ratio and never enlarging.
func FitSize(w, h, maxW, maxH int) (int, int) {
	scale := 1.0
	if maxW > 0 && w > maxW {
		scale = float64(maxW) / float64(w)
	}
	if maxH > 0 && h > maxH {
		scale = math.Min(scale, float64(maxH)/float64(h))
	}
	if scale >= 1 {
		return w, h
	}
	tw := max(1, int(math.Round(float64(w)*scale)))
	th := max(1, int(math.Round(float64(h)*scale)))
	if maxW > 0 {
		tw = min(tw, maxW)
	}
	if maxH > 0 {
		th = min(th, maxH)
	}
	return tw, th
}

// Candidates returns the formats to try, best first: opts.Formats (the
// source format when empty) without JPEG when the image has transparency,
// and with only lossless PNG for line art (palette or 1-4 bit PNG, GIF),
// which lossy coding blurs and usually enlarges. canEncode filters what
// the engine can write.
func Candidates(info Info, alpha bool, formats []Format, canEncode func(Format) bool) []Format {
	if len(formats) == 0 {
		formats = []Format{info.Format}
	}
	var out []Format
	seen := map[Format]bool{}
	add := func(f Format) {
		if !seen[f] && canEncode(f) {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, f := range formats {
		switch {
		case f == JPEG && alpha:
			// Never flatten transparency: offer PNG in its place.
			add(PNG)
		case info.LineArt && f != PNG:
			add(PNG)
		default:
			add(f)
		}
	}
	return out
}
