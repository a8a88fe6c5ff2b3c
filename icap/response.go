package icap

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgeadapt/edgeadapt/icap/internal/chunked"
)

// A ResponseWriter builds an ICAP response.
//
// The response head (ICAP status line, ICAP header, Encapsulated and the
// encapsulated HTTP header) is written by WriteHeader, or by the first
// Write with the unchanged encapsulated message. The body is streamed in
// chunks, one chunk per Write. Output is buffered and flushed when the
// handler returns or whenever the server would otherwise wait for input.
type ResponseWriter interface {
	// Header returns the ICAP header fields to send. ISTag, Date and
	// Encapsulated are added by the server (an ISTag set here wins).
	Header() http.Header

	// WriteHeader starts the response with ICAP status code and the
	// encapsulated HTTP message msg: an *http.Request (REQMOD answered
	// with a modified request), an *http.Response (RESPMOD, or REQMOD
	// answered with a response), or nil (no encapsulated header).
	// hasBody says whether a body follows (written with Write).
	//
	// Code 204 is turned into an unchanged echo when the client does not
	// allow it (see Request.Can204), and 206 likewise when the client did
	// not send Allow: 206 (or 500 if the handler already consumed part of
	// the body, which makes an echo impossible). A 206 inside a preview is
	// sent only after the whole preview has arrived (Squid requires it). If the request is still in preview and the
	// response is a 200 with a body, the rest of the original body is
	// requested first (100 Continue), so that the handler can stream it;
	// close Request.Body first if the handler does not need it.
	WriteHeader(code int, msg any, hasBody bool)

	// Write writes p as one body chunk.
	Write(p []byte) (int, error)

	// Trailer returns the trailer fields sent after the last chunk when
	// the client sent "Allow: trailers" (dropped otherwise).
	Trailer() http.Header

	// UseOriginalBody sets N in the last chunk extension
	// "use-original-body=N" of a 206 response: the client continues with
	// the original body from byte N. The default is 0.
	UseOriginalBody(offset int64)
}

// ICAPTrailerWriter gives access to the ICAP trailer of a response
// (draft-rousskov-icap-trailers): ICAP fields sent after the whole
// encapsulated message, e.g. a scan verdict known only at the end of the
// body. It is separate from ResponseWriter.Trailer, the HTTP trailer of
// the encapsulated body. The server's ResponseWriter and
// icaptest.ResponseRecorder implement it; other ResponseWriters may not,
// so use a checked type assertion.
//
// The trailer is sent only when the client sent "Allow: trailers". Its
// field names are announced in a "Trailer" ICAP header written with the
// response head (with "Allow: trailers", which the draft and Squid
// require of a message that carries a trailer), so they must be known before WriteHeader (or the first
// Write): the keys of ICAPTrailer at that time, plus the names listed in
// a "Trailer" field of ResponseWriter.Header. Values may be set until the
// handler returns; only announced fields are sent.
type ICAPTrailerWriter interface {
	ICAPTrailer() http.Header
}

// response is the server's ResponseWriter, reused per connection.
type response struct {
	c      *conn
	req    *Request
	header http.Header
	// wireHeader, if set, is header already serialised (without the
	// fields the server writes itself): a service's OPTIONS answer.
	wireHeader  []byte
	trailer     http.Header
	icapTrailer http.Header
	// icapTrailerNames are the ICAP trailer fields announced in the
	// head, sorted; nil if none was announced.
	icapTrailerNames []string
	istag            string
	via              string // service's Via text, added to modified messages
	unmodified       bool   // the message is echoed unchanged: no Via
	wroteHeader      bool
	hasBody          bool
	closeAfter       bool
	code             int
	useOriginal      int64
	cw               chunked.Writer
	err              error
}

func (w *response) reset(c *conn, req *Request) {
	*w = response{c: c, req: req, closeAfter: req.Close}
}

func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *response) Trailer() http.Header {
	if w.trailer == nil {
		w.trailer = make(http.Header)
	}
	return w.trailer
}

// ICAPTrailer implements ICAPTrailerWriter.
func (w *response) ICAPTrailer() http.Header {
	if w.icapTrailer == nil {
		w.icapTrailer = make(http.Header)
	}
	return w.icapTrailer
}

// announceICAPTrailer returns the ICAP trailer names to announce: the
// keys of the ICAP trailer and the names in Header's Trailer field, if
// the client allows trailers.
func (w *response) announceICAPTrailer() []string {
	if !w.req.AllowTrailers || (len(w.icapTrailer) == 0 && len(w.header["Trailer"]) == 0) {
		return nil
	}
	names := make([]string, 0, len(w.icapTrailer))
	for k := range w.icapTrailer {
		names = append(names, k)
	}
	for k := range announcedTrailer(w.header["Trailer"]) {
		if _, dup := w.icapTrailer[k]; !dup {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func (w *response) UseOriginalBody(offset int64) { w.useOriginal = offset }

// sendContinue writes "100 Continue" so that the client sends the rest of
// the body after a preview.
func (w *response) sendContinue() error {
	if w.wroteHeader {
		return ErrPreviewOver
	}
	bw := w.c.bw
	bw.WriteString("ICAP/1.0 100 Continue\r\n\r\n")
	if err := bw.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *response) WriteHeader(code int, msg any, hasBody bool) {
	if w.wroteHeader {
		w.c.srv.logger().Warn("icap: superfluous WriteHeader", "service", w.req.ServicePath(), "code", code)
		return
	}
	switch code {
	case StatusContinue:
		return // the server sends 100 Continue itself when the body is read
	case StatusNoContent:
		if !w.req.Can204() {
			w.unchanged()
			return
		}
		msg, hasBody = nil, false
	case StatusPartialContent:
		if !w.req.Can206() {
			w.unchanged()
			return
		}
		hasBody = true
		if b := w.req.body; b != nil && b.inPreview() && !b.cr.Done() {
			// Squid accepts a 206 only once it has sent the whole
			// preview (ModXact::handle206PartialContent; earlier it fails
			// the transaction: ICAP_ERR_OTHER, HTTP 500), so read the
			// rest of the preview (kept for Body) before answering.
			if err := b.bufferPreview(w.c.srv.limits().maxHeader, false); err != nil {
				w.err = err
				w.closeAfter = true
			}
		}
	case StatusOK:
		if b := w.req.body; hasBody && b != nil && b.inPreview() && !b.closed {
			// The handler is going to stream a body, most likely from the
			// original one: get the rest of it before the response starts.
			if err := b.bufferPreview(w.c.srv.limits().maxHeader, true); err != nil {
				w.err = err
				w.closeAfter = true
			}
		}
	}
	w.writeHeader(code, msg, hasBody)
}

// unchanged answers "no modification" when the client allows neither 204
// nor 206: by echoing the message. If the handler already consumed part of
// the body, an echo would be truncated, so the answer is 500 instead (and
// the reason logged): a client with bypass enabled then uses its original.
func (w *response) unchanged() {
	if b := w.req.body; b != nil && b.cr.Consumed()-int64(len(b.pre)) > 0 {
		w.c.srv.logger().Error("icap: handler asked for 204/206 the client does not allow after consuming the body; answering 500",
			"service", w.req.ServicePath(), "remote", w.c.remoteAddr)
		w.writeHeader(StatusInternalServerError, nil, false)
		return
	}
	w.err = Echo(w, w.req)
}

// writeHeader writes the response head.
func (w *response) writeHeader(code int, msg any, hasBody bool) {
	c := w.c
	w.wroteHeader, w.code, w.hasBody = true, code, hasBody
	if code >= 400 {
		// Error answers end the connection, as c-icap's do: some clients
		// (c-icap-client 0.5) read a body-less error answer until EOF.
		w.closeAfter = true
	}
	if c.srv.inShutdown.Load() && !((w.req.body == nil || w.req.body.done) && c.br.Buffered() > 0) {
		// Shutting down: this is the connection's last transaction, and
		// the client learns it before it sends another request (a
		// request on a connection closed without a word is retried by
		// Squid only if it had not seen the close coming). Bytes
		// buffered after a complete request are a pipelined request:
		// it is served next, and its response carries the close.
		w.closeAfter = true
	}
	head := c.head[:0]
	var enc Encapsulated
	switch m := msg.(type) {
	case *http.Request:
		raw := ""
		if m == w.req.Request && m.URL != nil && *m.URL == w.req.origURL {
			raw = w.req.rawTarget
		}
		head = appendRequestHead(head, m, raw)
		head = w.addVia(head, code)
		enc = encapsulatedFor(ReqHdr, ReqBody, len(head), hasBody)
	case *http.Response:
		head = appendResponseHead(head, m)
		head = w.addVia(head, code)
		enc = encapsulatedFor(ResHdr, ResBody, len(head), hasBody)
	default:
		enc = encapsulatedFor(0, OptBody, 0, hasBody)
	}
	c.head = head
	bw := c.bw
	bw.WriteString(statusLine(code))
	if len(w.header["Istag"]) == 0 {
		tag := w.istag
		if tag == "" {
			tag = c.srv.istag()
		}
		bw.WriteString("ISTag: ")
		bw.WriteString(tag)
		bw.WriteString("\r\n")
	}
	bw.WriteString("Date: ")
	bw.WriteString(httpDateAt(c.now))
	bw.WriteString("\r\n")
	if len(w.header) > 0 {
		if hasToken(w.header["Connection"], "close") {
			w.closeAfter = true
		}
		if w.wireHeader != nil {
			bw.Write(w.wireHeader)
		} else {
			c.scratch = appendFields(c.scratch[:0], w.header, skipICAP)
			bw.Write(c.scratch)
		}
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	if names := w.announceICAPTrailer(); len(names) > 0 {
		w.icapTrailerNames = names
		if !hasToken(w.header["Allow"], "trailers") {
			// A message with an ICAP trailer says that its sender
			// supports trailers; Squid fails the transaction otherwise
			// (ModXact::expectIcapTrailers).
			bw.WriteString("Allow: trailers\r\n")
		}
		bw.WriteString("Trailer: ")
		for i, k := range names {
			if i > 0 {
				bw.WriteString(", ")
			}
			bw.WriteString(wireKey(k))
		}
		bw.WriteString("\r\n")
	}
	bw.WriteString("Encapsulated: ")
	c.scratch = enc.appendTo(c.scratch[:0])
	bw.Write(c.scratch)
	bw.WriteString("\r\n\r\n")
	_, err := bw.Write(head)
	if err != nil {
		w.err = err
	}
	w.cw.Reset(bw)
}

// addVia inserts "Via: 1.0 <via>" before the blank line ending head, for
// a modified message (RFC 3507 sections 4.8.3, 4.9.3).
func (w *response) addVia(head []byte, code int) []byte {
	if w.via == "" || w.unmodified || code != StatusOK {
		return head
	}
	head = head[:len(head)-2]
	head = append(head, "Via: 1.0 "...)
	head = appendSanitized(head, w.via)
	return append(head, "\r\n\r\n"...)
}

func encapsulatedFor(hdr, bodySection Section, hdrLen int, hasBody bool) Encapsulated {
	var e Encapsulated
	if hdr != 0 {
		e.Entries[0].Section = hdr
		e.N = 1
	}
	e.Entries[e.N].Offset = hdrLen
	if hasBody {
		e.Entries[e.N].Section = bodySection
	} else {
		e.Entries[e.N].Section = NullBody
	}
	e.N++
	return e
}

func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		if containsFold(v, tok) {
			return true
		}
	}
	return false
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := 0; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(StatusOK, w.req.Message(), true)
	}
	if !w.hasBody {
		return 0, ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.cw.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

// ReadFrom copies src into the body with a pooled buffer, one chunk per
// read, so that io.Copy does not allocate.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if wt, ok := src.(io.WriterTo); ok {
		return wt.WriteTo(writerOnly{w})
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	return io.CopyBuffer(writerOnly{w}, src, *bp)
}

// writerOnly hides ReadFrom from io.Copy to avoid recursion.
type writerOnly struct{ io.Writer }

// spliceMax bounds one splice, so that the inactivity deadlines are
// extended at least every spliceMax bytes.
const spliceMax = 1 << 20

// splicing counts the SpliceChunk calls in progress in this process.
var splicing atomic.Int32

// SpliceChunk implements chunked.Splicer for io.Copy(w, r.Body) (Echo):
// it sends up to n bytes of the request body's current chunk from the
// connection back to it as one response chunk with splice(2)
// (net.TCPConn.ReadFrom of a LimitedReader of itself), so the data never
// enters user space. Only when src is this connection's reader, on plain
// TCP, with nothing buffered. The socket is corked meanwhile (conn.cork).
func (w *response) SpliceChunk(src *bufio.Reader, n int64) (int64, error) {
	c := w.c
	tc, ok := c.rwc.(*net.TCPConn)
	if !ok || src != c.br || !w.wroteHeader || !w.hasBody || w.err != nil || c.hasPending || c.br.Buffered() > 0 {
		return 0, chunked.ErrNoSplice
	}
	// Corked, the chunk-size line and the tail of every pump leave in
	// full segments. That saves the client wake-ups when this is the only
	// large body in flight (1 MB echo at c=1: 4-14% more req/s, 2-6% less
	// CPU), but cost 10-15% more CPU per body in 3 of 5 runs at c=16,
	// where the queues of the other connections' sockets already make the
	// kernel batch (tcp_autocorking). So only the only splice corks.
	if splicing.Add(1) == 1 {
		c.cork(true)
		defer c.cork(false)
	}
	defer splicing.Add(-1)
	m, err := w.cw.WriteChunkFunc(min(n, spliceMax), func(n int64) (int64, error) {
		extendDeadline(c.rwc, &c.readDeadline, c.srv.readTimeout(), true)
		extendDeadline(c.rwc, &c.writeDeadline, c.srv.writeTimeout(), false)
		m, err := tc.ReadFrom(io.LimitReader(tc, n))
		c.nread += m
		c.nwritten += m
		return m, err
	})
	if err != nil {
		w.err = err
	}
	return m, err
}

// finish ends the response after the handler returned: the last chunk,
// draining what the client still sends, and the flush. It reports whether
// the connection can carry another request.
func (w *response) finish() bool {
	c := w.c
	if b := w.req.body; b != nil && w.err == nil {
		if err := b.cr.Err(); err != nil && err != io.EOF {
			// The request body broke off (timeout, malformed chunk,
			// client gone): the response must not look complete, so it
			// is not terminated and the connection is closed.
			w.err = err
		}
	}
	if w.hasBody && w.err == nil {
		ext := ""
		if w.code == StatusPartialContent {
			ext = "use-original-body=" + strconv.FormatInt(max(w.useOriginal, 0), 10)
		}
		var tr http.Header
		if w.req.AllowTrailers {
			tr = w.trailer
		}
		if err := w.cw.Close(ext, tr); err != nil {
			w.err = err
		}
	}
	if w.icapTrailerNames != nil && w.err == nil {
		// The ICAP trailer follows the whole encapsulated message: the
		// last chunk, or the head of a message without body.
		c.scratch = c.scratch[:0]
		for _, k := range w.icapTrailerNames {
			c.scratch = appendFields(c.scratch, http.Header{k: w.icapTrailer[k]}, 0)
		}
		c.scratch = append(c.scratch, '\r', '\n')
		if _, err := c.bw.Write(c.scratch); err != nil {
			w.err = err
		}
	}
	if err := c.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	keep := !w.closeAfter && w.err == nil
	if b := w.req.body; b != nil && keep && !b.done {
		switch {
		case b.preview && !b.continued && b.cr.Done():
			// The preview has been read and no 100 Continue was sent:
			// the client sends nothing more.
		default:
			// An early response: read and discard the rest of the body
			// (of the preview, or of the whole message) up to the limit.
			c.drain = io.LimitedReader{R: &b.cr, N: c.srv.maxDrain() + 1}
			n, err := io.Copy(io.Discard, &c.drain)
			c.drain.R = nil
			if err != nil || n > c.srv.maxDrain() || !b.cr.Done() {
				keep = false
			}
		}
	}
	if b := w.req.body; b != nil && keep && b.complete() && b.readTrailer() != nil {
		keep = false // the next request would start inside a broken trailer
	}
	return keep
}

// bufferPreview reads the rest of the preview into memory (at most max
// bytes); Read serves the buffered bytes first. With cont, unless the
// preview ended with ieof, it then asks the client for the rest of the
// body with 100 Continue.
func (b *body) bufferPreview(max int, cont bool) error {
	for !b.cr.Done() {
		if len(b.pre) > max {
			return protoErr(StatusBadRequest, ErrMalformed, "preview longer than %d bytes", max)
		}
		if cap(b.pre)-len(b.pre) < 512 {
			b.pre = append(b.pre, make([]byte, 4096)...)[:len(b.pre)]
		}
		n, err := b.cr.Read(b.pre[len(b.pre):cap(b.pre)])
		b.pre = b.pre[:len(b.pre)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !cont {
		if b.cr.IEOF() {
			b.ieof = true
		}
		return nil
	}
	return b.finishSequence()
}
