package compress

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Content-Coding names as they appear in Content-Encoding and
// Accept-Encoding.
const (
	Identity = "identity"
	Brotli   = "br"
	Gzip     = "gzip"
	Zstd     = "zstd"
)

// DefaultPreference is the order in which Negotiate picks among codings the
// client accepts with equal q-values: brotli compresses text best, zstd is
// fastest at a similar ratio, gzip is understood everywhere.
var DefaultPreference = []string{Brotli, Zstd, Gzip}

// ErrUnsupported is returned for a content coding this package does not
// implement (compress, deflate, x-gzip chains...).
var ErrUnsupported = errors.New("compress: unsupported content coding")

// Levels used by NewWriter. They trade a little ratio for speed so that a
// 200 KB page compresses in a few milliseconds on one core.
const (
	GzipLevel   = 6 // same as `gzip -6`, the usual origin setting
	BrotliLevel = 5
)

// ZstdLevel is the zstd encoder level used by NewWriter.
const ZstdLevel = zstd.SpeedDefault

// Negotiate returns the coding from pref (DefaultPreference when nil) that
// the Accept-Encoding header value allows with the highest q-value, ties
// broken by pref order, or Identity when none is acceptable. A coding listed
// with q=0 is refused even when "*" would allow it.
func Negotiate(acceptEncoding string, pref []string) string {
	if pref == nil {
		pref = DefaultPreference
	}
	q := parseAccept(acceptEncoding)
	best, bestQ := Identity, 0.0
	for _, c := range pref {
		v, ok := q[c]
		if !ok {
			v, ok = q["*"]
		}
		if ok && v > bestQ {
			best, bestQ = c, v
		}
	}
	return best
}

// parseAccept maps each coding in an Accept-Encoding value to its q-value.
func parseAccept(v string) map[string]float64 {
	m := make(map[string]float64)
	for _, part := range strings.Split(v, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				} else {
					q = 0
				}
			}
		}
		if name == "x-gzip" {
			name = Gzip
		}
		m[name] = q
	}
	return m
}

// NewWriter returns a writer that compresses to w with the named coding.
// Identity returns a writer whose Close does nothing. Close must be called
// to flush the encoder; it does not close w. Encoders are pooled: their
// tables cost more to allocate than a small page costs to compress.
func NewWriter(w io.Writer, coding string) (io.WriteCloser, error) {
	c := Normalize(coding)
	var enc resetWriter
	switch c {
	case Identity:
		return nopCloser{w}, nil
	case Gzip, Brotli, Zstd:
		if v := pools[c].Get(); v != nil {
			enc = v.(resetWriter)
			enc.Reset(w)
			break
		}
		var err error
		if enc, err = newEncoder(w, c); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
	}
	return &pooledWriter{resetWriter: enc, pool: pools[c]}, nil
}

// resetWriter is what the three encoders have in common.
type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

var pools = map[string]*sync.Pool{Gzip: {}, Brotli: {}, Zstd: {}}

func newEncoder(w io.Writer, c string) (resetWriter, error) {
	switch c {
	case Gzip:
		return gzip.NewWriterLevel(w, GzipLevel)
	case Brotli:
		return brotli.NewWriterLevel(w, BrotliLevel), nil
	default:
		// One goroutine and a 1 MB window: bodies are small and many run
		// at once, so the per-request memory matters more than speed.
		return zstd.NewWriter(w, zstd.WithEncoderLevel(ZstdLevel),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20),
			zstd.WithLowerEncoderMem(true))
	}
}

// pooledWriter returns its encoder to the pool on Close.
type pooledWriter struct {
	resetWriter
	pool *sync.Pool
}

func (p *pooledWriter) Close() error {
	if p.resetWriter == nil {
		return nil
	}
	err := p.resetWriter.Close()
	p.resetWriter.Reset(io.Discard) // drop the reference to the caller's writer
	p.pool.Put(p.resetWriter)
	p.resetWriter = nil
	return err
}

// Normalize lower-cases a Content-Encoding value and maps the empty string
// and "x-gzip" to their canonical names.
func Normalize(coding string) string {
	c := strings.ToLower(strings.TrimSpace(coding))
	switch c {
	case "":
		return Identity
	case "x-gzip":
		return Gzip
	}
	return c
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
