// Package chunked implements the chunked transfer coding used for ICAP
// bodies (RFC 3507 section 4.4.1, which borrows HTTP/1.1's chunked coding),
// including the ICAP chunk extensions "ieof" (RFC 3507 section 4.5) and
// "use-original-body" (the 206 Partial Content extension), and trailers.
//
// The reader works on a *bufio.Reader and never buffers more than one chunk
// size line or trailer line; chunk data is read straight into the caller's
// slice. The writer emits exactly one chunk per Write call.
package chunked

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
)

// Limits of the decoder. A chunk size line (size plus extensions) longer
// than MaxLineBytes, or trailers longer than MaxTrailerBytes in total, make
// the body malformed.
const (
	MaxLineBytes    = 4096
	MaxTrailerBytes = 16 << 10
)

// Errors returned by Reader. All of them mean the ICAP message is malformed
// and the connection cannot be reused.
var (
	ErrLineTooLong    = errors.New("chunked: chunk size line too long")
	ErrBadSize        = errors.New("chunked: malformed chunk size")
	ErrBadExtension   = errors.New("chunked: malformed chunk extension")
	ErrMissingCRLF    = errors.New("chunked: chunk data not followed by CRLF")
	ErrTrailerTooLong = errors.New("chunked: trailers too long")
	ErrBadTrailer     = errors.New("chunked: malformed trailer line")
)

// A Splicer is a WriteTo destination that can move chunk data from the
// Reader's source connection itself (splice(2) between sockets: no copy
// through user space). WriteTo offers it the rest of a large chunk when
// nothing is buffered in src, the Reader's bufio.Reader: SpliceChunk
// moves at most n bytes from src's source and returns how many, or
// (0, ErrNoSplice) to have WriteTo copy them instead (it must refuse a src
// it does not know). Any other error ends the body.
type Splicer interface {
	SpliceChunk(src *bufio.Reader, n int64) (int64, error)
}

// ErrNoSplice is returned by a Splicer that cannot splice now.
var ErrNoSplice = errors.New("chunked: splice not possible")

// bigSize is the size of the buffers WriteTo uses for large chunks.
const bigSize = 256 << 10

var bigPool = sync.Pool{New: func() any { b := make([]byte, bigSize); return &b }}

// Reader decodes one chunked body. Read returns io.EOF after the last
// chunk and its trailers; the extensions of the last chunk are then
// available from IEOF and UseOriginalBody.
type Reader struct {
	r       *bufio.Reader
	n       int64 // bytes left in the current chunk
	err     error // sticky error, io.EOF after the last chunk
	inChunk bool

	ieof        bool
	useOriginal int64
	trailer     http.Header
	consumed    int64
	long        []byte // a line longer than the bufio buffer
}

// NewReader returns a Reader reading from r.
func NewReader(r *bufio.Reader) *Reader {
	cr := &Reader{}
	cr.Reset(r)
	return cr
}

// Reset makes cr decode a new chunked body from r.
func (cr *Reader) Reset(r *bufio.Reader) {
	*cr = Reader{r: r, useOriginal: -1, long: cr.long[:0]}
}

// Restart makes cr decode a further chunked stream from the same reader
// after a completed one: after an ICAP preview that ended with "0" (no
// ieof) and a "100 Continue", the rest of the body arrives as a new chunk
// sequence.
func (cr *Reader) Restart() {
	r, c := cr.r, cr.consumed
	cr.Reset(r)
	cr.consumed = c
}

// IEOF reports whether the last chunk carried the "ieof" extension.
func (cr *Reader) IEOF() bool { return cr.ieof }

// UseOriginalBody returns the offset of a "use-original-body=N" extension
// on the last chunk, or -1.
func (cr *Reader) UseOriginalBody() int64 { return cr.useOriginal }

// Trailer returns the trailer fields that followed the last chunk, or nil.
func (cr *Reader) Trailer() http.Header { return cr.trailer }

// Done reports whether the last chunk and trailers have been read.
func (cr *Reader) Done() bool { return cr.err == io.EOF }

// Err returns the sticky error, if any (io.EOF once done).
func (cr *Reader) Err() error { return cr.err }

// Consumed returns the number of decoded body bytes returned so far.
func (cr *Reader) Consumed() int64 { return cr.consumed }

// ready moves through chunk size lines and chunk ends until there is
// chunk data to read; it reports false once the body ended or failed
// (cr.err says which).
func (cr *Reader) ready() bool {
	for cr.err == nil {
		switch {
		case !cr.inChunk:
			cr.err = cr.beginChunk()
		case cr.n == 0:
			cr.err = cr.endChunk()
		default:
			return true
		}
	}
	return false
}

// Read reads decoded body bytes.
func (cr *Reader) Read(p []byte) (int, error) {
	for cr.ready() {
		if len(p) == 0 {
			return 0, nil
		}
		if int64(len(p)) > cr.n {
			p = p[:cr.n]
		}
		n, err := cr.r.Read(p)
		cr.n -= int64(n)
		cr.consumed += int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			cr.err = err
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, cr.err
}

// WriteTo writes the decoded body to w, so that io.Copy needs no buffer of
// its own when w has none either: chunk data is passed on from the bufio
// buffer without another copy.
func (cr *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for cr.ready() {
		if sp, ok := w.(Splicer); ok && cr.r.Buffered() == 0 && cr.n >= int64(cr.r.Size()) {
			// A large chunk and nothing buffered: the destination may
			// move it from the source connection itself.
			m, err := sp.SpliceChunk(cr.r, cr.n)
			cr.n -= m
			cr.consumed += m
			total += m
			if err != ErrNoSplice {
				if err != nil {
					cr.err = err
					return total, err
				}
				continue
			}
		}
		if cr.r.Buffered() == 0 && cr.n >= int64(cr.r.Size()) {
			// A large chunk and nothing buffered: read straight into a
			// big buffer, so that each syscall moves up to bigSize bytes
			// instead of one bufio buffer.
			bp := bigPool.Get().(*[]byte)
			m, err := cr.r.Read((*bp)[:min(int64(len(*bp)), cr.n)])
			cr.n -= int64(m)
			cr.consumed += int64(m)
			var werr error
			if m > 0 {
				_, werr = w.Write((*bp)[:m])
				total += int64(m)
			}
			bigPool.Put(bp)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				cr.err = err
				break
			}
			if werr != nil {
				return total, werr
			}
			continue
		}
		if cr.r.Buffered() == 0 {
			if _, err := cr.r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				cr.err = err
				break
			}
		}
		b, _ := cr.r.Peek(min(cr.r.Buffered(), int(min(cr.n, int64(^uint(0)>>1)))))
		m, werr := w.Write(b)
		cr.r.Discard(m)
		cr.n -= int64(m)
		cr.consumed += int64(m)
		total += int64(m)
		if werr != nil {
			return total, werr
		}
	}
	if cr.err == io.EOF {
		return total, nil
	}
	return total, cr.err
}

// readLine returns one line without its CRLF (or bare LF), at most
// MaxLineBytes long. Lines longer than the bufio buffer are assembled in
// cr.long. The slice is valid until the next read.
func (cr *Reader) readLine() ([]byte, error) {
	line, err := cr.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		cr.long = append(cr.long[:0], line...)
		for err == bufio.ErrBufferFull && len(cr.long) <= MaxLineBytes {
			line, err = cr.r.ReadSlice('\n')
			cr.long = append(cr.long, line...)
		}
		line = cr.long
	}
	if len(line) > MaxLineBytes+2 {
		return nil, ErrLineTooLong
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func (cr *Reader) beginChunk() error {
	line, err := cr.readLine()
	if err != nil {
		return err
	}
	size, ext, err := parseSizeLine(line)
	if err != nil {
		return err
	}
	if size == 0 {
		if err := cr.parseLastExtensions(ext); err != nil {
			return err
		}
		if err := cr.readTrailer(); err != nil {
			return err
		}
		return io.EOF
	}
	cr.n = size
	cr.inChunk = true
	return nil
}

func (cr *Reader) endChunk() error {
	b, err := cr.r.ReadByte()
	if err == nil && b == '\r' {
		b, err = cr.r.ReadByte()
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b != '\n' {
		return ErrMissingCRLF
	}
	cr.inChunk = false
	return nil
}

// parseSizeLine splits "1a2b; ext=1" into the size and the extension text.
func parseSizeLine(line []byte) (int64, []byte, error) {
	var size int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto done
		}
		if i >= 15 { // 15 hex digits = 2^60: far beyond any real body
			return 0, nil, ErrBadSize
		}
		size = size<<4 | int64(d)
	}
done:
	if i == 0 {
		return 0, nil, ErrBadSize
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, nil, ErrBadSize
	}
	return size, rest, nil
}

// Extension is one chunk extension, name and (possibly empty) value.
type Extension struct{ Name, Value []byte }

// ForEachExtension calls fn for every "; name[=value]" in ext. Quoted
// values are returned without their quotes.
func ForEachExtension(ext []byte, fn func(name, value []byte) error) error {
	for len(ext) > 0 {
		ext = trimSpace(ext)
		if len(ext) == 0 {
			return nil
		}
		if ext[0] != ';' {
			return ErrBadExtension
		}
		ext = trimSpace(ext[1:])
		j := 0
		for j < len(ext) && isToken(ext[j]) {
			j++
		}
		if j == 0 {
			return ErrBadExtension
		}
		name := ext[:j]
		ext = trimSpace(ext[j:])
		var value []byte
		if len(ext) > 0 && ext[0] == '=' {
			ext = trimSpace(ext[1:])
			if len(ext) > 0 && ext[0] == '"' {
				k := 1
				for k < len(ext) && ext[k] != '"' {
					if ext[k] == '\\' {
						k++
					}
					k++
				}
				if k >= len(ext) {
					return ErrBadExtension
				}
				value = ext[1:k]
				ext = ext[k+1:]
			} else {
				k := 0
				for k < len(ext) && isToken(ext[k]) {
					k++
				}
				value = ext[:k]
				ext = ext[k:]
			}
		}
		if err := fn(name, value); err != nil {
			return err
		}
	}
	return nil
}

func (cr *Reader) parseLastExtensions(ext []byte) error {
	if len(ext) == 0 {
		return nil
	}
	return ForEachExtension(ext, func(name, value []byte) error {
		switch {
		case equalFold(name, "ieof"):
			cr.ieof = true
		case equalFold(name, "use-original-body"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return ErrBadExtension
			}
			cr.useOriginal = n
		}
		return nil
	})
}

func (cr *Reader) readTrailer() error {
	total := 0
	var last string
	for {
		line, err := cr.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		total += len(line) + 2
		if total > MaxTrailerBytes {
			return ErrTrailerTooLong
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding
			if last == "" {
				return ErrBadTrailer
			}
			vs := cr.trailer[last]
			vs[len(vs)-1] += " " + string(trimSpace(line))
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return ErrBadTrailer
		}
		key := textproto.CanonicalMIMEHeaderKey(string(trimSpace(line[:i])))
		if cr.trailer == nil {
			cr.trailer = make(http.Header)
		}
		cr.trailer[key] = append(cr.trailer[key], string(trimSpace(line[i+1:])))
		last = key
	}
}

// Writer encodes a chunked body onto a *bufio.Writer: each Write is one
// chunk. Close writes the last chunk; it does not flush.
type Writer struct {
	w   *bufio.Writer
	n   int64
	hdr [18]byte // chunk size line; a field, so that it does not escape per call
}

// NewWriter returns a Writer writing to w.
func NewWriter(w *bufio.Writer) *Writer { return &Writer{w: w} }

// Reset makes cw write a new body to w.
func (cw *Writer) Reset(w *bufio.Writer) { *cw = Writer{w: w} }

// Written returns the number of body bytes written.
func (cw *Writer) Written() int64 { return cw.n }

// Write writes p as one chunk. An empty p writes nothing (a zero-size
// chunk would end the body).
func (cw *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b := strconv.AppendUint(cw.hdr[:0], uint64(len(p)), 16)
	b = append(b, '\r', '\n')
	if _, err := cw.w.Write(b); err != nil {
		return 0, err
	}
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	if err != nil {
		return n, err
	}
	if _, err := cw.w.WriteString("\r\n"); err != nil {
		return n, err
	}
	return n, nil
}

// WriteChunkFunc writes one chunk of n bytes whose data move sends to
// the destination of the underlying bufio.Writer itself, after the
// chunk-size line was flushed. move must send exactly n bytes; it returns
// how many it sent.
func (cw *Writer) WriteChunkFunc(n int64, move func(n int64) (int64, error)) (int64, error) {
	b := strconv.AppendUint(cw.hdr[:0], uint64(n), 16)
	b = append(b, '\r', '\n')
	cw.w.Write(b)
	if err := cw.w.Flush(); err != nil {
		return 0, err
	}
	m, err := move(n)
	cw.n += m
	if err == nil && m < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return m, err
	}
	_, err = cw.w.WriteString("\r\n")
	return m, err
}

// Close writes the last chunk "0" with the extension text ext (for
// example "ieof" or "use-original-body=0", without the leading ";"),
// then the trailer fields and the final CRLF.
func (cw *Writer) Close(ext string, trailer http.Header) error {
	w := cw.w
	w.WriteByte('0')
	if ext != "" {
		w.WriteString("; ")
		w.WriteString(ext)
	}
	w.WriteString("\r\n")
	for k, vs := range trailer {
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			WriteSanitized(w, v)
			w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// WriteSanitized writes a header value with CR and LF replaced by spaces,
// so that a value cannot inject header lines.
func WriteSanitized(w *bufio.Writer, v string) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			b := []byte(v)
			for j := range b {
				if b[j] == '\r' || b[j] == '\n' {
					b[j] = ' '
				}
			}
			w.Write(b)
			return
		}
	}
	w.WriteString(v)
}

// TrimSpace removes leading and trailing spaces and tabs (HTTP OWS).
func TrimSpace(b []byte) []byte { return trimSpace(b) }

// IsTokenChar reports whether c may appear in an RFC 7230 token.
func IsTokenChar(c byte) bool { return isToken(c) }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isToken reports whether c may appear in an RFC 7230 token.
func isToken(c byte) bool {
	if c >= 0x80 || c <= ' ' || c == 0x7f {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
		return false
	}
	return true
}
