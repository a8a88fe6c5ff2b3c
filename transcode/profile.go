package transcode

import (
	"fmt"
	"mime"
	"strings"

	"github.com/edgeadapt/edgeadapt/transcode/html"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// Profile says how to adapt content for one class of client. The zero
// value changes nothing (every body passes as not-applicable).
type Profile struct {
	// Name identifies the profile in logs and in X-Adapted.
	Name string `json:"name"`

	// MaxWidth and MaxHeight bound images (0 = unbounded); aspect ratio is
	// kept and nothing is enlarged.
	MaxWidth  int `json:"max_width"`
	MaxHeight int `json:"max_height"`
	// Quality is the lossy image quality 1-100 (0 = image.DefaultQuality).
	Quality int `json:"quality"`
	// Formats lists output formats in order of preference. WebP is used
	// only when the request's Accept allows it. Empty means DefaultFormats.
	Formats []image.Format `json:"formats"`
	// Greyscale turns images grey.
	Greyscale bool `json:"greyscale"`
	// StripMetadata drops EXIF/XMP from images (the Go engine always does).
	StripMetadata bool `json:"strip_metadata"`
	// Animation is the animated GIF/WebP policy: pass, keep or first-frame.
	Animation image.AnimationPolicy `json:"animation"`

	// Minify minifies HTML, CSS, JS, SVG and JSON.
	Minify bool `json:"minify"`
	// Placeholders replaces HTML images by links labelled with their alt
	// text and drops prefetch/preload hints (the slowest clients).
	Placeholders bool `json:"placeholders"`
	// Compress re-encodes text with the best coding the client accepts
	// (Encodings order); without it the origin's coding is kept.
	Compress bool `json:"compress"`
	// Encodings is the coding preference (compress.DefaultPreference when
	// empty).
	Encodings []string `json:"encodings"`
}

// DefaultFormats is the image format preference when Profile.Formats is
// empty: WebP where accepted, else JPEG (PNG for transparency and line art).
var DefaultFormats = []image.Format{image.WebP, image.JPEG}

// images reports whether the profile changes images at all.
func (p Profile) images() bool {
	return p.MaxWidth > 0 || p.MaxHeight > 0 || p.Quality > 0 || len(p.Formats) > 0 || p.Greyscale
}

// text reports whether the profile changes text at all.
func (p Profile) text() bool { return p.Minify || p.Placeholders || p.Compress }

// Key is a canonical string of every field that changes the output; it
// enters the ETag, so two profiles with equal keys share cache entries.
func (p Profile) Key() string {
	return fmt.Sprintf("w%d h%d q%d f%v g%t s%t a%s m%t p%t c%t e%v",
		p.MaxWidth, p.MaxHeight, p.Quality, p.Formats, p.Greyscale, p.StripMetadata,
		p.Animation, p.Minify, p.Placeholders, p.Compress, p.Encodings)
}

// Validate checks the ranges of the fields.
func (p Profile) Validate() error {
	switch {
	case p.MaxWidth < 0 || p.MaxHeight < 0:
		return fmt.Errorf("transcode: profile %q: max_width and max_height must be >= 0", p.Name)
	case p.Quality < 0 || p.Quality > 100:
		return fmt.Errorf("transcode: profile %q: quality must fall in range [1, 100]", p.Name)
	}
	for _, f := range p.Formats {
		if _, err := image.ParseFormat(string(f)); err != nil {
			return fmt.Errorf("transcode: profile %q: %w", p.Name, err)
		}
	}
	for _, e := range p.Encodings {
		switch e {
		case Brotli, Gzip, Zstd:
		default:
			return fmt.Errorf("transcode: profile %q: unknown encoding %q (want br, gzip or zstd)", p.Name, e)
		}
	}
	return nil
}

type kind int

const (
	kindOther kind = iota
	kindImage
	kindText
)

func classify(contentType string) kind {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return kindOther
	}
	switch mt = strings.ToLower(mt); {
	case mt == "image/jpeg", mt == "image/png", mt == "image/gif", mt == "image/webp":
		return kindImage
	case html.Minifiable(mt):
		return kindText
	case strings.HasPrefix(mt, "text/"):
		return kindText // compressed only
	}
	return kindOther
}
