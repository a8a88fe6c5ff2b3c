package compress

import (
	"cmp"
	"errors"
	"fmt"
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Default decoding limits, used when the Limits fields are zero.
const (
	// DefaultMaxDecodedBytes bounds the decoded size of one body.
	DefaultMaxDecodedBytes = 64 << 20
	// DefaultMaxRatio bounds decoded/compressed bytes. Real text rarely
	// exceeds 20:1 (minified JS with brotli reaches ~15:1); a gzip bomb
	// reaches 1000:1.
	DefaultMaxRatio = 100
	// ratioSlack is the decoded size below which the ratio is not checked,
	// so that a tiny compressed stream of a legitimate small page (a 40 byte
	// gzip of 8 KB of spaces) is not taken for a bomb.
	ratioSlack = 1 << 20
	// earlySlack and earlyFactor stop an extreme stream sooner: past
	// earlySlack decoded bytes, a ratio above earlyFactor×MaxRatio (1000:1
	// by default, 100 times what real pages reach) is a bomb, so a
	// tag-dense brotli or zstd bomb costs the HTML rewriter about 128 KB
	// of work instead of 1 MB. Gzip bombs still stop at ratioSlack: the
	// gzip reader reads ahead 4 KB of input, so its ratio cannot exceed
	// 1000 before 4 MB are decoded. A false positive only passes the
	// original unchanged.
	earlySlack  = 64 << 10
	earlyFactor = 10
)

// Limits bounds what NewReader may produce. The zero value uses the
// Default... constants.
type Limits struct {
	// MaxDecodedBytes is the largest decoded body (DefaultMaxDecodedBytes).
	MaxDecodedBytes int64
	// MaxRatio is the largest decoded/compressed ratio allowed once more
	// than 1 MB is decoded (DefaultMaxRatio); ten times it is the largest
	// allowed once more than 64 KB is decoded.
	MaxRatio int64
}

func (l Limits) maxBytes() int64 {
	return cmp.Or(max(l.MaxDecodedBytes, 0), DefaultMaxDecodedBytes)
}

func (l Limits) maxRatio() int64 { return cmp.Or(max(l.MaxRatio, 0), DefaultMaxRatio) }

// BombError reports a decoded stream that crossed a Limits bound.
type BombError struct {
	Decoded, Compressed int64  // bytes decoded and compressed bytes read when stopped
	Limit               string // which limit: "size" or "ratio"
}

func (e *BombError) Error() string {
	return fmt.Sprintf("compress: decompression bomb: %d bytes from %d compressed (%s limit)",
		e.Decoded, e.Compressed, e.Limit)
}

// ErrBomb matches any *BombError with errors.Is.
var ErrBomb = errors.New("compress: decompression bomb")

// Is makes errors.Is(err, ErrBomb) true for a *BombError.
func (e *BombError) Is(target error) bool { return target == ErrBomb }

// NewReader returns a reader of the decoded form of r, which is encoded with
// coding (a Content-Encoding value). Reads fail with a *BombError when the
// decoded bytes exceed lim. Close releases the decoder; it does not close r.
func NewReader(r io.Reader, coding string, lim Limits) (io.ReadCloser, error) {
	cr := &countReader{r: r}
	var dec io.Reader
	closeFn := func() error { return nil }
	switch c := Normalize(coding); c {
	case Identity:
		dec = cr
	case Gzip:
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		dec, closeFn = zr, zr.Close
	case Brotli:
		dec = brotli.NewReader(cr)
	case Zstd:
		// WithDecoderMaxMemory also bounds the frame's declared content
		// size, and one goroutine keeps the decoder from running ahead.
		zr, err := zstd.NewReader(cr, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(uint64(lim.maxBytes())),
			zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		dec, closeFn = zr, func() error { zr.Close(); return nil }
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
	}
	return &limitReader{dec: dec, cr: cr, lim: lim, close: closeFn}, nil
}

// countReader counts the compressed bytes consumed.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type limitReader struct {
	dec   io.Reader
	cr    *countReader
	lim   Limits
	n     int64
	err   error
	close func() error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	// Never ask for more than one byte past the size limit, so that a bomb
	// costs at most MaxDecodedBytes of work.
	if room := l.lim.maxBytes() - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.dec.Read(p)
	l.n += int64(n)
	switch {
	case l.n > l.lim.maxBytes():
		l.err = &BombError{Decoded: l.n, Compressed: l.cr.n, Limit: "size"}
		return 0, l.err
	case l.n > ratioSlack && l.n/max(l.cr.n, 1) > l.lim.maxRatio(), // divide: a product can overflow
		l.n > earlySlack && l.n/max(l.cr.n, 1)/earlyFactor > l.lim.maxRatio():
		l.err = &BombError{Decoded: l.n, Compressed: l.cr.n, Limit: "ratio"}
		return 0, l.err
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decode: %w", err)
	}
	return n, err
}

func (l *limitReader) Close() error { return l.close() }
