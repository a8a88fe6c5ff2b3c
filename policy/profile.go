package policy

import (
	"fmt"
	"strings"
)

// Defaults of a transcoding profile; each applies when its key is zero.
const (
	DefaultImageQuality      = 60
	DefaultCompressionLevel  = 6
	DefaultCompressionMinLen = 1024
)

// Profile is a named transcoding profile ([profiles.NAME] in
// policy.toml). A rule's transcode action names one. Each section is
// optional; a response is transcoded only when a section handles its
// content type.
type Profile struct {
	Name        string              `toml:"-"`
	Image       *ImageProfile       `toml:"image"`
	HTML        *HTMLProfile        `toml:"html"`
	Compression *CompressionProfile `toml:"compression"`
}

// ImageProfile says how images are made lighter.
type ImageProfile struct {
	MaxWidth  int    `toml:"max_width"`  // pixels; 0: no limit
	MaxHeight int    `toml:"max_height"` // pixels; 0: no limit
	Quality   int    `toml:"quality"`    // 1–100 for lossy formats; 0: DefaultImageQuality
	Format    string `toml:"format"`     // "keep" (default), "jpeg", "png" or "webp"
	Greyscale bool   `toml:"greyscale"`  // drop colour
	Strip     bool   `toml:"strip"`      // drop metadata (EXIF, ICC, comments)
	GIF       string `toml:"gif"`        // "keep" (default), "first-frame" or "skip"
}

// HTMLProfile says how HTML pages are made lighter.
type HTMLProfile struct {
	Minify       bool `toml:"minify"`       // drop comments and redundant white space
	Placeholders bool `toml:"placeholders"` // replace images by links to them
}

// CompressionProfile says how text bodies are compressed.
type CompressionProfile struct {
	Encoding string   `toml:"encoding"`  // "gzip" (the only one for now)
	Level    int      `toml:"level"`     // 1–9; 0: DefaultCompressionLevel
	MinBytes int64    `toml:"min_bytes"` // smaller bodies pass; 0: DefaultCompressionMinLen
	Types    []string `toml:"types"`     // media types; empty: text/*, JS, JSON, XML, SVG
}

// Image media types an ImageProfile handles.
var imageTypes = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

// Default media types a CompressionProfile handles.
var defaultCompressTypes = []string{"text/*", "application/javascript", "application/json", "application/xml", "image/svg+xml"}

// validate checks the profile; errors name the key below the profile.
func (p *Profile) validate(add func(key, format string, args ...any)) {
	if p.Image == nil && p.HTML == nil && p.Compression == nil {
		add("", "profile %q has no section: want image, html or compression", p.Name)
	}
	if im := p.Image; im != nil {
		if im.MaxWidth < 0 || im.MaxHeight < 0 {
			add("image", "max_width and max_height must be >= 0")
		}
		if im.Quality < 0 || im.Quality > 100 {
			add("image.quality", "must be 1 to 100, got %d", im.Quality)
		}
		if im.Quality == 0 {
			im.Quality = DefaultImageQuality
		}
		switch im.Format {
		case "":
			im.Format = "keep"
		case "keep", "jpeg", "png", "webp":
		default:
			add("image.format", "unknown format %q: want keep, jpeg, png or webp", im.Format)
		}
		switch im.GIF {
		case "":
			im.GIF = "keep"
		case "keep", "first-frame", "skip":
		default:
			add("image.gif", "unknown gif policy %q: want keep, first-frame or skip", im.GIF)
		}
	}
	if c := p.Compression; c != nil {
		switch c.Encoding {
		case "":
			c.Encoding = "gzip"
		case "gzip":
		default:
			add("compression.encoding", "unknown encoding %q: want gzip", c.Encoding)
		}
		if c.Level < 0 || c.Level > 9 {
			add("compression.level", "must be 1 to 9, got %d", c.Level)
		}
		if c.Level == 0 {
			c.Level = DefaultCompressionLevel
		}
		if c.MinBytes < 0 {
			add("compression.min_bytes", "must be >= 0")
		}
		if c.MinBytes == 0 {
			c.MinBytes = DefaultCompressionMinLen
		}
		for _, t := range c.Types {
			if err := checkMediaPattern(t); err != nil {
				add("compression.types", "%v", err)
			}
		}
		if len(c.Types) == 0 {
			c.Types = defaultCompressTypes
		}
	}
}

// Handles reports whether the profile names the media type t, that is
// whether one of its sections would transform a body of that type.
func (p *Profile) Handles(t string) bool {
	if p == nil || t == "" {
		return false
	}
	if p.Image != nil {
		for _, it := range imageTypes {
			if t == it {
				return !(t == "image/gif" && p.Image.GIF == "skip")
			}
		}
	}
	if p.HTML != nil && (t == "text/html" || t == "application/xhtml+xml") {
		return true
	}
	if p.Compression != nil {
		for _, pat := range p.Compression.Types {
			if mediaMatch(pat, t) {
				return true
			}
		}
	}
	return false
}

// checkMediaPattern accepts "type/subtype", "type/*" and "*/*".
func checkMediaPattern(s string) error {
	typ, sub, ok := strings.Cut(s, "/")
	if !ok || typ == "" || sub == "" || strings.ContainsAny(s, " ;,") || (typ == "*" && sub != "*") {
		return fmt.Errorf("bad media type pattern %q: want type/subtype, type/* or */*", s)
	}
	if strings.ToLower(s) != s {
		return fmt.Errorf("bad media type pattern %q: must be lower case", s)
	}
	return nil
}

// mediaMatch matches media type t against a pattern checked by
// checkMediaPattern.
func mediaMatch(pat, t string) bool {
	if pat == "*/*" {
		return t != ""
	}
	if strings.HasSuffix(pat, "/*") {
		return len(t) > len(pat)-1 && t[:len(pat)-1] == pat[:len(pat)-1]
	}
	return pat == t
}

// mediaCovers reports whether pattern a matches everything pattern b does.
func mediaCovers(a, b string) bool {
	if a == b || a == "*/*" {
		return true
	}
	if strings.HasSuffix(a, "/*") {
		return strings.HasPrefix(b, a[:len(a)-1])
	}
	return false
}
