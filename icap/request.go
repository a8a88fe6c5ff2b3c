package icap

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/edgeadapt/edgeadapt/icap/internal/chunked"
)

// ICAP methods (RFC 3507 section 4.3.2).
const (
	MethodOPTIONS = "OPTIONS"
	MethodREQMOD  = "REQMOD"
	MethodRESPMOD = "RESPMOD"
)

// Request is an ICAP request: received by a Server, or to be sent by a
// Client.
//
// On the server, the Request and its Body are valid only until the
// handler returns; the server owns and closes the body. The server reuses
// the Request, its Header, the encapsulated Request and Response and their
// Header maps for later requests (so that a transaction allocates almost
// nothing): a handler that gives any of them to a goroutine outliving it
// must copy them first (Header.Clone).
type Request struct {
	// Method is OPTIONS, REQMOD or RESPMOD.
	Method string
	// URL is the ICAP URI, e.g. icap://127.0.0.1:1344/echo.
	URL *url.URL
	// Proto is "ICAP/1.0".
	Proto string
	// Header holds the ICAP header fields (not the encapsulated ones).
	Header http.Header
	// Encapsulated is the parsed Encapsulated header (zero if absent).
	Encapsulated Encapsulated

	// Request is the encapsulated HTTP request (req-hdr), or nil. For
	// REQMOD its Body is the same stream as Body.
	Request *http.Request
	// Response is the encapsulated HTTP response (res-hdr), or nil. For
	// RESPMOD its Body is the same stream as Body.
	Response *http.Response

	// Body is the encapsulated body (req-body, res-body or opt-body),
	// dechunked and streamed from the connection; http.NoBody for
	// null-body. Reading past a preview sends "100 Continue" to the
	// client transparently, unless the preview ended with "0; ieof".
	// Closing it before the end of a preview means the handler will
	// not need the rest, so no 100 Continue is sent.
	//
	// A Client sends Body if it is not nil, else the body of the
	// encapsulated message (Request.Body for REQMOD, Response.Body for
	// RESPMOD).
	Body io.ReadCloser

	// Preview is the Preview header value: the number of body bytes the
	// client sends before waiting for 100 Continue; -1 without a preview.
	// A Client sends a preview of this size when it is >= 0 (NewRequest
	// sets -1).
	Preview int

	// Allow204, Allow206 and AllowTrailers reflect the Allow header:
	// the client accepts 204 outside previews, 206 Partial Content, and
	// ICAP/HTTP trailers. A Client sends them as an Allow header.
	Allow204, Allow206, AllowTrailers bool

	// Close is set when the client sent "Connection: close"; a Client
	// sets it to ask the server to close after this transaction.
	Close bool

	// RemoteAddr is the client's network address (server only).
	RemoteAddr string
	// ClientIP is the X-Client-IP header (the HTTP client behind the ICAP
	// client, sent by Squid with adaptation_send_client_ip on).
	ClientIP string
	// TLS is the connection state of ICAPS connections (server only).
	TLS *tls.ConnectionState

	// Trailer holds the trailer fields after the last body chunk, once
	// Body has returned io.EOF: the encapsulated HTTP message's trailer.
	Trailer http.Header

	// ICAPTrailer is the ICAP trailer (draft-rousskov-icap-trailers, the
	// fix of the RFC 3507 errata's ban on trailers): ICAP fields sent
	// after the whole encapsulated message, announced by a "Trailer" ICAP
	// header, independent of the HTTP trailer in the last chunk.
	//
	// On the server it is nil without a Trailer header; with one, it
	// starts with the announced names mapped to nil values (as in
	// net/http) and is filled once the message has been read: when Body
	// returned io.EOF, or before the handler runs for a message without a
	// body. A client that gets an answer inside its preview (no 100
	// Continue) sends no trailer.
	//
	// A Client with a non-empty ICAPTrailer announces its names in a
	// Trailer header and sends the fields after the message; send it only
	// to a service whose OPTIONS answer allows trailers.
	ICAPTrailer http.Header

	// hasICAPTrailer: the request announced an ICAP trailer (Trailer
	// header), which follows the message and must be read.
	hasICAPTrailer bool

	urlStr      string   // URL.String() of urlFor, computed once by NewRequest
	urlFor      *url.URL // the URL urlStr belongs to
	rawTarget   string   // encapsulated request target as received
	origURL     url.URL  // encapsulated request URL as parsed, to detect changes
	body        *body
	ctx         context.Context
	servicePath string
}

// NewRequest returns a client Request for method and the ICAP URL rawURL,
// encapsulating req and/or resp (either may be nil), without preview.
func NewRequest(method, rawURL string, req *http.Request, resp *http.Response) (*Request, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("icap: parse URL %q: %w", rawURL, err)
	}
	if u.Scheme != "icap" && u.Scheme != "icaps" {
		return nil, fmt.Errorf("icap: URL %q: scheme must be icap or icaps", rawURL)
	}
	return &Request{
		urlStr:   u.String(),
		urlFor:   u,
		Method:   method,
		URL:      u,
		Proto:    "ICAP/1.0",
		Header:   make(http.Header),
		Request:  req,
		Response: resp,
		Preview:  -1,
	}, nil
}

// Context returns the request's context: on the server, canceled by
// Server.Close; on the client, the one set with WithContext. Never nil.
func (r *Request) Context() context.Context {
	if r.ctx != nil {
		return r.ctx
	}
	return context.Background()
}

// WithContext returns a shallow copy of r with its context changed to ctx.
func (r *Request) WithContext(ctx context.Context) *Request {
	r2 := *r
	r2.ctx = ctx
	return &r2
}

// ServicePath returns the path of the ICAP URI ("/echo").
func (r *Request) ServicePath() string {
	if r.servicePath != "" {
		return r.servicePath
	}
	if r.URL != nil {
		return r.URL.Path
	}
	return ""
}

// InPreview reports whether the client is still in preview mode: it sent
// a Preview header and has not been asked to continue (a preview that
// ended with ieof stays in preview mode). While true, a 204 is always
// allowed.
func (r *Request) InPreview() bool {
	if r.body == nil {
		return r.Preview >= 0
	}
	return r.body.inPreview()
}

// IEOF reports whether the preview ended with "0; ieof" (the preview held
// the whole body). Valid once the preview has been read.
func (r *Request) IEOF() bool {
	return r.body != nil && r.body.ieof
}

// Can204 reports whether a "204 No Content" answer is allowed now: the
// client sent Allow: 204, or the request is still in preview.
func (r *Request) Can204() bool { return r.Allow204 || r.InPreview() }

// Can206 reports whether a "206 Partial Content" answer is allowed: the
// client sent Allow: 206 and the message has a body to refer to.
func (r *Request) Can206() bool { return r.Allow206 && r.HasBody() }

// HasBody reports whether the encapsulated message has a body (as opposed
// to null-body).
func (r *Request) HasBody() bool {
	b := r.Encapsulated.Body()
	if b == 0 { // client request built by hand
		return r.clientBody() != nil
	}
	return b != NullBody
}

// Message returns the encapsulated message the request is about: the
// HTTP response for RESPMOD, the HTTP request for REQMOD, nil for
// OPTIONS. It is what an unmodified answer echoes.
func (r *Request) Message() any {
	switch {
	case r.Method == MethodRESPMOD && r.Response != nil:
		return r.Response
	case r.Method == MethodREQMOD && r.Request != nil:
		return r.Request
	}
	return nil
}

// clientBody returns the body a Client sends, or nil.
func (r *Request) clientBody() io.Reader {
	if r.Body != nil && r.Body != http.NoBody {
		return r.Body
	}
	switch r.Method {
	case MethodREQMOD:
		if r.Request != nil && r.Request.Body != nil && r.Request.Body != http.NoBody {
			return r.Request.Body
		}
	case MethodRESPMOD:
		if r.Response != nil && r.Response.Body != nil && r.Response.Body != http.NoBody {
			return r.Response.Body
		}
	}
	return nil
}

// requestBlock holds a received request and the parts it points to, so
// that parsing allocates them at once. The server takes its blocks from
// blockPool and puts them back after each transaction (the Request is
// valid only until the handler returns), so that a request costs no
// allocation of its structures and header maps, only of its strings.
type requestBlock struct {
	req   Request
	url   url.URL
	heads heads
	body  body
	// icapHeader is the map behind req.Header, kept for reuse; icapVals
	// the backing array of its values.
	icapHeader http.Header
	icapVals   []string
}

var blockPool = sync.Pool{New: func() any { return new(requestBlock) }}

// maxReuseFields bounds the header maps and value arrays a pooled block
// keeps: a request with huge headers must not make every later one
// carry them.
const maxReuseFields = 64

// reset prepares a used block for the next request, keeping its maps,
// value arrays and buffers (emptied).
func (blk *requestBlock) reset() {
	b := &blk.body
	pre := b.pre[:0]
	if cap(pre) > 64<<10 {
		pre = nil
	}
	*b = body{pre: pre, cr: b.cr}
	b.cr.Reset(nil) // keeps its line buffer
	blk.req = Request{}
	blk.url = url.URL{}
	blk.icapHeader = reusable(blk.icapHeader)
	blk.heads.reqHeader = reusable(blk.heads.reqHeader)
	blk.heads.respHeader = reusable(blk.heads.respHeader)
}

// reusable empties h for reuse, or drops it if it grew large.
func reusable(h http.Header) http.Header {
	if len(h) > maxReuseFields {
		return nil
	}
	clear(h)
	return h
}

// limits bundles the parser limits.
type limits struct {
	maxHeader, maxHTTPHeader int
}

// ReadRequest reads and parses an ICAP request from b with the default
// limits. The body is streamed from b; without a server behind it,
// reading past a preview that did not end with ieof returns io.EOF.
func ReadRequest(b *bufio.Reader) (*Request, error) {
	var p parser
	return readRequest(b, limits{DefaultMaxHeaderBytes, DefaultMaxHTTPHeaderBytes}, &p, nil)
}

// readRequest parses a request. On a protocol error it returns the partly
// filled Request (method, URL) with the error, so that the caller can log
// and account for it.
//
// blk, if not nil, is a (reset) block to parse into, else a new one is
// allocated.
func readRequest(br *bufio.Reader, lim limits, p *parser, blk *requestBlock) (*Request, error) {
	line, n, err := readLine(br, lim.maxHeader, &p.line)
	if err == errLineLimit {
		return nil, protoErr(StatusBadRequest, ErrHeaderTooLarge, "ICAP request line over %d bytes", lim.maxHeader)
	}
	if err != nil {
		return nil, err
	}
	if blk == nil {
		blk = new(requestBlock)
	}
	r := &blk.req
	r.Preview = -1
	i := indexByte(line, ' ')
	j := lastIndexByte(line, ' ')
	if i <= 0 || j <= i+1 {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed request line %q", truncate(line))
	}
	switch m := line[:i]; string(m) {
	case MethodOPTIONS:
		r.Method = MethodOPTIONS
	case MethodREQMOD:
		r.Method = MethodREQMOD
	case MethodRESPMOD:
		r.Method = MethodRESPMOD
	default:
		r.Method = string(m)
	}
	version := line[j+1:]
	if t := line[i+1 : j]; p.lastURL != nil && string(t) == p.lastTarget {
		// A persistent connection asks for the same service again and
		// again: copy the parsed URL instead of parsing it anew.
		blk.url = *p.lastURL
		r.URL = &blk.url
	} else {
		target := string(t)
		if r.URL, err = url.ParseRequestURI(target); err != nil {
			return r, protoErr(StatusBadRequest, ErrMalformed, "ICAP URI %q: %v", target, err)
		}
		u := *r.URL
		p.lastTarget, p.lastURL = target, &u
	}
	if string(version) != "ICAP/1.0" {
		if !strings.HasPrefix(string(version), "ICAP/") {
			return r, protoErr(StatusBadRequest, ErrMalformed, "malformed request line %q", truncate(line))
		}
		return r, protoErr(StatusVersionNotSupported, ErrVersion, "version %q", version)
	}
	r.Proto = "ICAP/1.0"
	r.Header = blk.icapHeader
	m, err := readFields(br, lim.maxHeader-n, &r.Header, &blk.icapVals, p)
	blk.icapHeader = r.Header
	if err == errLineLimit {
		return r, protoErr(StatusBadRequest, ErrHeaderTooLarge, "ICAP header over %d bytes", lim.maxHeader)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return r, err
	}
	_ = m
	if r.Method != MethodOPTIONS && r.Method != MethodREQMOD && r.Method != MethodRESPMOD {
		return r, protoErr(StatusNotImplemented, ErrUnknownMethod, "method %q", r.Method)
	}
	enc, nenc, err := r.parseICAPFields(p)
	if err != nil {
		return r, err
	}
	switch {
	case nenc > 1:
		return r, protoErr(StatusBadRequest, ErrBadEncapsulated, "%d Encapsulated headers", nenc)
	case nenc == 0 && r.Method != MethodOPTIONS:
		return r, protoErr(StatusBadRequest, ErrBadEncapsulated, "%s without Encapsulated header", r.Method)
	case nenc == 1:
		if r.Encapsulated, err = ParseEncapsulated(enc); err != nil {
			return r, err
		}
		if !r.Encapsulated.ValidFor(r.Method) {
			return r, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q not allowed for %s", enc, r.Method)
		}
	default:
		r.Encapsulated.N = 1
		r.Encapsulated.Entries[0].Section = NullBody
	}
	if err := r.readHTTPHeads(br, lim, p, blk); err != nil {
		return r, err
	}
	if r.hasICAPTrailer && r.body == nil {
		// No body: the ICAP trailer follows the encapsulated headers.
		if err := readICAPTrailer(br, lim.maxHeader, &r.ICAPTrailer, p); err != nil {
			return r, err
		}
	}
	return r, nil
}

// parseICAPFields reads Preview, Allow, Connection, X-Client-IP and
// Trailer from the fields readFields has just put into r.Header, and
// returns the first Encapsulated value and how many there were. It walks
// the parser's list of the fields (canonical keys, in order, with their
// values) instead of looking each name up in the map.
func (r *Request) parseICAPFields(p *parser) (enc string, nenc int, err error) {
	preview, client := false, false
	for i, e := range p.ents {
		v := p.strs[i]
		switch e.key {
		case "Encapsulated":
			if nenc == 0 {
				enc = v
			}
			nenc++
		case "Preview":
			if preview {
				continue
			}
			preview = true
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return "", 0, protoErr(StatusBadRequest, ErrMalformed, "Preview %q", v)
			}
			r.Preview = n
		case "Allow":
			for f := range strings.SplitSeq(v, ",") {
				switch strings.TrimSpace(f) {
				case "204":
					r.Allow204 = true
				case "206":
					r.Allow206 = true
				case "trailers":
					r.AllowTrailers = true
				}
			}
		case "Connection":
			if containsFold(v, "close") {
				r.Close = true
			}
		case "X-Client-Ip":
			if !client {
				client = true
				r.ClientIP = v
			}
		case "Trailer":
			r.hasICAPTrailer = true
		}
	}
	if r.hasICAPTrailer {
		r.ICAPTrailer = announcedTrailer(r.Header["Trailer"])
	}
	return enc, nenc, nil
}

// announcedTrailer returns the field names listed by Trailer header values
// as a header with nil values.
func announcedTrailer(vs []string) http.Header {
	h := make(http.Header)
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h[canonicalKey([]byte(f))] = nil
			}
		}
	}
	return h
}

// readICAPTrailer reads the ICAP trailer fields up to the empty line (at
// most limit bytes) into *dst.
func readICAPTrailer(br *bufio.Reader, limit int, dst *http.Header, p *parser) error {
	if _, err := readFields(br, limit, dst, nil, p); err != nil {
		switch err {
		case errLineLimit:
			return protoErr(StatusBadRequest, ErrHeaderTooLarge, "ICAP trailer over %d bytes", limit)
		case io.EOF:
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read ICAP trailer: %w", err)
	}
	return nil
}

// readHTTPHeads reads the encapsulated header sections, each exactly as
// long as the offsets say, and sets up the body.
func (r *Request) readHTTPHeads(br *bufio.Reader, lim limits, p *parser, blk *requestBlock) error {
	e := &r.Encapsulated
	var err error
	r.Request, r.Response, err = readHeads(br, e, lim, p, &blk.heads)
	if err != nil {
		return err
	}
	if r.Request != nil {
		r.rawTarget = r.Request.RequestURI
		r.origURL = *r.Request.URL
	}
	if e.Body() == NullBody {
		r.Body = http.NoBody
		if r.Preview >= 0 {
			// A preview of a message without a body is complete.
			r.Preview = -1
		}
		return nil
	}
	b := &blk.body
	b.req, b.preview = r, r.Preview >= 0
	b.cr.Reset(br)
	if r.hasICAPTrailer {
		b.br, b.p, b.trailerLimit = br, p, lim.maxHeader
	}
	r.body = b
	r.Body = b
	switch e.Body() {
	case ReqBody:
		if r.Request != nil {
			r.Request.Body = b
		}
	case ResBody:
		if r.Response != nil {
			r.Response.Body = b
		}
	}
	return nil
}

// body streams a chunked ICAP body and implements the preview protocol.
type body struct {
	cr        chunked.Reader
	req       *Request
	preview   bool // the request had a Preview header
	continued bool // 100 Continue was sent
	ieof      bool
	done      bool // the whole body has been read
	closed    bool
	pre       []byte // preview bytes read ahead by bufferPreview
	// onContinue is set by the server: it writes "100 Continue" and
	// flushes, or fails if the response already started.
	onContinue func() error

	// With an announced ICAP trailer: where to read it from, with which
	// scratch parser and limit, and whether it has been read.
	br           *bufio.Reader
	p            *parser
	trailerLimit int
	trailerRead  bool
	trailerErr   error
}

// complete reports whether the client has sent the whole message: the
// last chunk of the body, or of a preview that held all of it (ieof).
// After a preview without ieof and no 100 Continue, the client sends
// nothing more (not even an ICAP trailer).
func (b *body) complete() bool {
	return b.cr.Done() && (!b.preview || b.continued || b.cr.IEOF())
}

// readTrailer reads the announced ICAP trailer once the message is
// complete; it does nothing without one or when already read.
func (b *body) readTrailer() error {
	if b.br == nil || b.trailerRead {
		return b.trailerErr
	}
	b.trailerRead = true
	b.trailerErr = readICAPTrailer(b.br, b.trailerLimit, &b.req.ICAPTrailer, b.p)
	return b.trailerErr
}

// inPreview reports whether the client is waiting in preview mode: it
// keeps the whole message (even after "0; ieof") until it gets an answer
// other than 100 Continue, so a 204 is allowed.
func (b *body) inPreview() bool {
	return b.preview && !b.continued
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, ErrBodyClosed
	}
	if len(b.pre) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		return n, nil
	}
	for {
		n, err := b.cr.Read(p)
		if err != io.EOF {
			return n, err
		}
		if err := b.finishSequence(); err != nil {
			return n, err
		}
		if b.done {
			return n, io.EOF
		}
		if n > 0 {
			return n, nil
		}
	}
}

// WriteTo lets io.Copy pass chunk data straight from the connection's
// read buffer to the destination.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	if b.closed {
		return 0, ErrBodyClosed
	}
	var total int64
	if len(b.pre) > 0 {
		n, err := w.Write(b.pre)
		total += int64(n)
		b.pre = b.pre[n:]
		if err != nil {
			return total, err
		}
	}
	for {
		n, err := b.cr.WriteTo(w)
		total += n
		if err != nil {
			return total, err
		}
		if err := b.finishSequence(); err != nil {
			return total, err
		}
		if b.done {
			return total, nil
		}
	}
}

// finishSequence handles the end of a chunk sequence: the end of the
// body, or the end of a preview, after which it asks for the rest.
func (b *body) finishSequence() error {
	if b.done {
		return nil
	}
	if b.preview && !b.continued {
		if b.cr.IEOF() {
			b.ieof = true
		} else {
			if b.onContinue == nil {
				b.done = true // standalone parser: the preview is all there is
				return nil
			}
			if err := b.onContinue(); err != nil {
				return err
			}
			b.continued = true
			b.cr.Restart()
			return nil
		}
	}
	b.done = true
	copyTrailer(&b.req.Trailer, b.cr.Trailer())
	return b.readTrailer()
}

// Close marks the body as no longer wanted. Closing inside a preview means
// no 100 Continue will be sent. The server drains or discards what is
// left after the handler returns.
func (b *body) Close() error {
	b.closed = true
	return nil
}

// readHeads reads the encapsulated HTTP header sections that e announces,
// each exactly as long as its offsets say.
// They are parsed into *dst if not nil.
func readHeads(br *bufio.Reader, e *Encapsulated, lim limits, p *parser, dst *heads) (*http.Request, *http.Response, error) {
	var req *http.Request
	var resp *http.Response
	for k := 0; k < e.N-1; k++ {
		s := e.Entries[k]
		size := e.Entries[k+1].Offset - s.Offset
		rq, rs, err := readHTTPHead(br, size, lim.maxHTTPHeader, s.Section == ReqHdr, p, dst)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the ICAP header promised more
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read encapsulated %s: %w", s.Section, err)
		}
		if rq != nil {
			req = rq
		} else {
			resp = rs
			resp.Request = req
		}
	}
	return req, resp, nil
}
