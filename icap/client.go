package icap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeadapt/edgeadapt/icap/internal/chunked"
)

// Client defaults.
const (
	DefaultClientTimeout       = time.Minute
	DefaultMaxIdleConnsPerHost = 256
	DefaultPort                = "1344"
	DefaultTLSPort             = "11344"
	// syncBodyLimit: request bodies of known length up to this size are
	// written before the response is read; larger or unknown ones are
	// written by a second goroutine while the response is read, so that
	// an echoing server never deadlocks against the client.
	syncBodyLimit = 64 << 10
	// staleCheckAfter: pooled connections idle longer than this are
	// checked for a close by the server before reuse.
	staleCheckAfter = time.Second
)

// Response is an ICAP response received by a Client.
type Response struct {
	Proto      string // "ICAP/1.0"
	StatusCode int
	Status     string // e.g. "200 OK"
	// Header holds the ICAP header fields.
	Header       http.Header
	Encapsulated Encapsulated
	// Request is the adapted HTTP request (REQMOD answered with req-hdr).
	Request *http.Request
	// Response is the adapted HTTP response.
	Response *http.Response
	// Body streams the adapted body (dechunked); http.NoBody without
	// one. Read it to EOF or Close it to reuse the connection. After a
	// 204 answer to a preview, the original body has been read up to the
	// preview size and the caller uses the original message.
	Body io.ReadCloser
	// Trailer holds the trailer fields, once Body returned io.EOF.
	Trailer http.Header
	// ICAPTrailer holds the ICAP trailer the server announced with a
	// Trailer header (see Request.ICAPTrailer): the announced names with
	// nil values until Body returned io.EOF, then the fields received.
	// Nil without a Trailer header.
	ICAPTrailer http.Header
	// UseOriginalBody is the offset of a 206 response's
	// "use-original-body=N", once Body returned io.EOF; -1 otherwise.
	UseOriginalBody int64
}

// ISTag returns the ISTag header.
func (r *Response) ISTag() string { return r.Header.Get("ISTag") }

// Client is an ICAP client with a pool of persistent connections per
// server. It is safe for concurrent use. The zero value is usable.
type Client struct {
	// DialContext dials the server; a net.Dialer if nil.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is used for icaps:// URLs.
	TLSConfig *tls.Config
	// Timeout bounds every read and write (inactivity, not the total
	// time of a transaction); DefaultClientTimeout if 0.
	Timeout time.Duration
	// MaxIdleConnsPerHost bounds the idle pool per server;
	// DefaultMaxIdleConnsPerHost if 0.
	MaxIdleConnsPerHost int
	// MaxHeaderBytes and MaxHTTPHeaderBytes limit the response headers.
	MaxHeaderBytes, MaxHTTPHeaderBytes int

	mu   sync.Mutex
	idle map[string][]*clientConn

	// Testing.
	now func() time.Time
}

func (cl *Client) clock() time.Time {
	if cl.now != nil {
		return cl.now()
	}
	return time.Now()
}

type clientConn struct {
	cl        *Client
	key       string
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	cw        chunked.Writer
	scratch   []byte
	p         parser
	head      []byte
	rdeadline time.Time
	wdeadline time.Time
	timeout   time.Duration
	broken    bool
	raw       syscall.RawConn // for the stale check; nil for TLS
	idleSince time.Time
	// Cancellation (see bind), guarded by cmu: ctx is the bound context,
	// stop its registration; inUse while a request runs; pastDeadline
	// once a cancellation set a deadline in the past.
	cmu          sync.Mutex
	ctx          context.Context
	stop         func() bool
	inUse        bool
	pastDeadline bool
	writing      bool // a goroutine is writing the request body
	writeDone    chan error
	// trailer is the ICAP trailer of the request being sent; trailerBuf
	// its wire form (the body writer may be another goroutine, so it does
	// not share scratch).
	trailer    http.Header
	trailerBuf []byte
}

// Read and Write extend the inactivity deadline, then check the request's
// context: in that order, so that a cancellation (which sets a deadline in
// the past) is never overwritten by the extension.
func (cc *clientConn) Read(p []byte) (int, error) {
	extendDeadline(cc.nc, &cc.rdeadline, cc.timeout, true)
	if err := cc.canceled(); err != nil {
		return 0, err
	}
	return cc.nc.Read(p)
}

func (cc *clientConn) Write(p []byte) (int, error) {
	extendDeadline(cc.nc, &cc.wdeadline, cc.timeout, false)
	if err := cc.canceled(); err != nil {
		return 0, err
	}
	return cc.nc.Write(p)
}

func (cc *clientConn) canceled() error {
	if cc.ctx == nil {
		return nil
	}
	select {
	case <-cc.ctx.Done():
		return cc.ctx.Err()
	default:
		return nil
	}
}

func (cl *Client) timeout() time.Duration { return orDefault(cl.Timeout, DefaultClientTimeout) }

func hostKey(req *Request) (key, addr string, useTLS bool, err error) {
	if req.URL == nil {
		return "", "", false, errors.New("icap: request without URL")
	}
	useTLS = req.URL.Scheme == "icaps"
	addr = req.URL.Host
	if addr == "" {
		return "", "", false, fmt.Errorf("icap: URL %q has no host", req.URL)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		port := DefaultPort
		if useTLS {
			port = DefaultTLSPort
		}
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), port)
	}
	if useTLS {
		return "s:" + addr, addr, true, nil
	}
	return addr, addr, false, nil
}

func (cl *Client) getConn(ctx context.Context, req *Request) (*clientConn, error) {
	key, addr, useTLS, err := hostKey(req)
	if err != nil {
		return nil, err
	}
	for {
		cl.mu.Lock()
		l := cl.idle[key]
		if len(l) == 0 {
			cl.mu.Unlock()
			break
		}
		cc := l[len(l)-1]
		l[len(l)-1] = nil
		cl.idle[key] = l[:len(l)-1]
		cl.mu.Unlock()
		// A connection idle for a while may have been closed by the
		// server (idle timeout); check before sending on it, since a
		// request body cannot be replayed.
		if cc.raw != nil && cl.clock().Sub(cc.idleSince) > staleCheckAfter && peerClosed(cc.raw) {
			cc.close()
			continue
		}
		cc.bind(ctx)
		return cc, nil
	}
	dial := cl.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: cl.timeout(), KeepAlive: 30 * time.Second}).DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("icap: dial %s: %w", addr, err)
	}
	if useTLS {
		cfg := &tls.Config{}
		if cl.TLSConfig != nil {
			cfg = cl.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		tc.SetDeadline(time.Now().Add(cl.timeout()))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("icap: TLS handshake with %s: %w", addr, err)
		}
		tc.SetDeadline(time.Time{})
		nc = tc
	}
	cc := &clientConn{cl: cl, key: key, nc: nc, timeout: cl.timeout(), writeDone: make(chan error, 1)}
	if sc, ok := nc.(syscall.Conn); ok {
		cc.raw, _ = sc.SyscallConn()
	}
	cc.br = bufio.NewReaderSize(cc, bufferSize)
	cc.bw = bufio.NewWriterSize(cc, bufferSize)
	cc.bind(ctx)
	return cc, nil
}

// bind makes a cancellation of ctx interrupt the connection's blocked
// reads and writes during the coming request. The registration is kept
// while consecutive requests use the same context (a load generator's
// workers do), so that the common case costs no allocation; a
// cancellation while the connection is idle in the pool does not harm it.
func (cc *clientConn) bind(ctx context.Context) {
	if ctx.Done() == nil {
		ctx = nil
	}
	cc.cmu.Lock()
	defer cc.cmu.Unlock()
	if ctx != cc.ctx {
		if cc.stop != nil {
			cc.stop()
		}
		cc.ctx, cc.stop = ctx, nil
		if ctx != nil {
			cc.stop = context.AfterFunc(ctx, func() { cc.onCancel(ctx) })
		}
	}
	if cc.pastDeadline { // canceled after the I/O of the last request
		cc.nc.SetDeadline(time.Time{})
		cc.rdeadline, cc.wdeadline = time.Time{}, time.Time{}
		cc.pastDeadline = false
	}
	cc.inUse = true
}

// onCancel runs when ctx is canceled: a request in progress under it is
// interrupted by a deadline in the past. A late call for a context the
// connection is no longer bound to does nothing.
func (cc *clientConn) onCancel(ctx context.Context) {
	cc.cmu.Lock()
	defer cc.cmu.Unlock()
	if cc.inUse && cc.ctx == ctx {
		cc.nc.SetDeadline(time.Unix(1, 0))
		cc.pastDeadline = true
	}
}

func (cc *clientConn) release() {
	cc.cmu.Lock()
	cc.inUse = false
	cc.cmu.Unlock()
}

// close closes the connection and drops its context registration.
func (cc *clientConn) close() {
	if cc.stop != nil {
		cc.stop()
		cc.stop = nil
	}
	cc.nc.Close()
}

func (cl *Client) putConn(cc *clientConn) {
	cc.release()
	if cc.broken {
		cc.close()
		return
	}
	cl.mu.Lock()
	if cl.idle == nil {
		cl.idle = make(map[string][]*clientConn)
	}
	if l := cl.idle[cc.key]; len(l) < orDefault(cl.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost) {
		cc.idleSince = cl.clock()
		cl.idle[cc.key] = append(l, cc)
		cl.mu.Unlock()
		return
	}
	cl.mu.Unlock()
	cc.close()
}

// CloseIdleConnections closes the pooled idle connections.
func (cl *Client) CloseIdleConnections() {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle = nil
	cl.mu.Unlock()
	for _, l := range idle {
		for _, cc := range l {
			cc.close()
		}
	}
}

// Options sends an OPTIONS request for the ICAP service URL.
func (cl *Client) Options(ctx context.Context, rawURL string) (*Response, error) {
	req, err := NewRequest(MethodOPTIONS, rawURL, nil, nil)
	if err != nil {
		return nil, err
	}
	return cl.Do(req.WithContext(ctx))
}

// Do sends req and returns the response, whose Body streams from the
// connection: read it to EOF or close it.
//
// With req.Preview >= 0 it sends that many body bytes (ending with
// "0; ieof" if the body fits) and continues after "100 Continue"; any other
// answer ends the transaction. Bodies are written concurrently with the
// reading of the response when they may be large, so early responses and
// streaming servers work.
func (cl *Client) Do(req *Request) (*Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cc, err := cl.getConn(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, err := cc.roundTrip(req)
	if err != nil {
		cc.broken = true
		if cc.writing {
			<-cc.writeDone
		}
		cc.close()
		return nil, err
	}
	return resp, nil
}

func (cc *clientConn) roundTrip(req *Request) (*Response, error) {
	body := req.clientBody()
	cc.trailer = req.ICAPTrailer
	if err := cc.writeHead(req, body != nil); err != nil {
		return nil, err
	}
	if body == nil {
		cc.writeICAPTrailer()
		if err := cc.bw.Flush(); err != nil {
			return nil, err
		}
		return cc.readFinal(req)
	}
	if req.Preview >= 0 {
		return cc.sendPreview(req, body)
	}
	cc.startBody(nil, body)
	return cc.readFinal(req)
}

// writeHead writes the ICAP header and the encapsulated HTTP headers.
func (cc *clientConn) writeHead(req *Request, hasBody bool) error {
	head := cc.head[:0]
	var enc Encapsulated
	add := func(s Section, off int) {
		enc.Entries[enc.N].Section, enc.Entries[enc.N].Offset = s, off
		enc.N++
	}
	bodySection := OptBody
	switch req.Method {
	case MethodREQMOD:
		bodySection = ReqBody
		if req.Request != nil {
			add(ReqHdr, 0)
			head = appendRequestHead(head, req.Request, "")
		}
	case MethodRESPMOD:
		bodySection = ResBody
		if req.Request != nil {
			add(ReqHdr, 0)
			head = appendRequestHead(head, req.Request, "")
		}
		if req.Response != nil {
			add(ResHdr, len(head))
			head = appendResponseHead(head, req.Response)
		}
	}
	if hasBody {
		add(bodySection, len(head))
	} else if req.Method != MethodOPTIONS || enc.N > 0 {
		add(NullBody, len(head))
	}
	cc.head = head
	bw := cc.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	if req.URL == req.urlFor {
		bw.WriteString(req.urlStr)
	} else {
		bw.WriteString(req.URL.String())
	}
	bw.WriteString(" ICAP/1.0\r\n")
	if len(req.Header["Host"]) == 0 {
		bw.WriteString("Host: ")
		bw.WriteString(req.URL.Host)
		bw.WriteString("\r\n")
	}
	b := appendFields(cc.scratch[:0], req.Header, skipClient)
	// A request that carries an ICAP trailer says it supports trailers.
	trailers := req.AllowTrailers || len(req.ICAPTrailer) > 0
	if req.Allow204 || req.Allow206 || trailers {
		b = append(b, "Allow: "...)
		sep := ""
		for _, a := range [...]struct {
			on  bool
			tok string
		}{{req.Allow204, "204"}, {req.Allow206, "206"}, {trailers, "trailers"}} {
			if a.on {
				b = append(b, sep...)
				b = append(b, a.tok...)
				sep = ", "
			}
		}
		b = append(b, '\r', '\n')
	}
	if hasBody && req.Preview >= 0 {
		b = append(b, "Preview: "...)
		b = strconv.AppendInt(b, int64(req.Preview), 10)
		b = append(b, '\r', '\n')
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	if len(req.ICAPTrailer) > 0 {
		b = append(b, "Trailer: "...)
		for i, k := range slices.Sorted(maps.Keys(req.ICAPTrailer)) {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, wireKey(k)...)
		}
		b = append(b, '\r', '\n')
	}
	if enc.N > 0 {
		b = append(b, "Encapsulated: "...)
		b = enc.appendTo(b)
		b = append(b, '\r', '\n')
	}
	b = append(b, '\r', '\n')
	cc.scratch = b
	bw.Write(b)
	_, err := bw.Write(head)
	return err
}

// sendPreview sends the first req.Preview bytes and handles the answer.
func (cc *clientConn) sendPreview(req *Request, body io.Reader) (*Response, error) {
	bp := copyBufPool.Get().(*[]byte)
	buf := *bp
	if len(buf) < req.Preview+1 {
		buf = make([]byte, req.Preview+1)
	}
	n, err := io.ReadFull(body, buf[:req.Preview+1])
	ieof := false
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		ieof = true
	default:
		copyBufPool.Put(bp)
		return nil, fmt.Errorf("icap: read request body: %w", err)
	}
	cc.cw.Reset(cc.bw)
	cc.cw.Write(buf[:min(n, req.Preview)])
	var extra []byte
	if !ieof {
		extra = append(extra, buf[req.Preview])
		cc.cw.Close("", nil)
	} else {
		cc.cw.Close("ieof", nil)
		cc.writeICAPTrailer()
	}
	copyBufPool.Put(bp)
	if err := cc.bw.Flush(); err != nil {
		return nil, err
	}
	resp, err := cc.readResponse(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != StatusContinue {
		return resp, nil
	}
	if ieof {
		return nil, errors.New("icap: server sent 100 Continue after a preview with ieof")
	}
	cc.startBody(extra, body)
	return cc.readFinal(req)
}

// startBody writes prefix and the rest of body as chunks, then the last
// chunk. Small bodies of known length are written inline, others by a
// goroutine so that the response can be read meanwhile.
func (cc *clientConn) startBody(prefix []byte, body io.Reader) {
	if l, ok := body.(interface{ Len() int }); ok && l.Len()+len(prefix) <= syncBodyLimit {
		cc.writeDone <- cc.writeBody(prefix, body)
		cc.writing = true
		return
	}
	cc.writing = true
	go func() { cc.writeDone <- cc.writeBody(prefix, body) }()
}

func (cc *clientConn) writeBody(prefix []byte, body io.Reader) error {
	cc.cw.Reset(cc.bw)
	if len(prefix) > 0 {
		cc.cw.Write(prefix)
	}
	if wt, ok := body.(io.WriterTo); ok {
		if _, err := wt.WriteTo(&cc.cw); err != nil {
			return err
		}
	} else {
		bp := copyBufPool.Get().(*[]byte)
		_, err := io.CopyBuffer(&cc.cw, body, *bp)
		copyBufPool.Put(bp)
		if err != nil {
			return err
		}
	}
	cc.cw.Close("", nil)
	cc.writeICAPTrailer()
	return cc.bw.Flush()
}

// writeICAPTrailer writes the request's ICAP trailer, if it has one, after
// the end of the message.
func (cc *clientConn) writeICAPTrailer() {
	if len(cc.trailer) == 0 {
		return
	}
	b := cc.trailerBuf[:0]
	for _, k := range slices.Sorted(maps.Keys(cc.trailer)) {
		b = appendFields(b, http.Header{k: cc.trailer[k]}, 0)
	}
	b = append(b, '\r', '\n')
	cc.trailerBuf = b
	cc.bw.Write(b)
}

// waitWriter waits for the body writer, if any, and reports its error.
func (cc *clientConn) waitWriter() error {
	if !cc.writing {
		return nil
	}
	cc.writing = false
	return <-cc.writeDone
}

// readFinal reads responses until a final (non-1xx) one.
func (cc *clientConn) readFinal(req *Request) (*Response, error) {
	for {
		resp, err := cc.readResponse(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != StatusContinue {
			return resp, nil
		}
	}
}

func (cc *clientConn) readResponse(req *Request) (*Response, error) {
	lim := limits{orDefault(cc.cl.MaxHeaderBytes, DefaultMaxHeaderBytes), orDefault(cc.cl.MaxHTTPHeaderBytes, DefaultMaxHTTPHeaderBytes)}
	line, n, err := readLine(cc.br, lim.maxHeader, &cc.p.line)
	if err != nil {
		if err == errLineLimit {
			return nil, protoErr(0, ErrHeaderTooLarge, "response status line")
		}
		return nil, fmt.Errorf("icap: read response: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("ICAP/1.0 ")) || len(line) < 12 {
		return nil, protoErr(0, ErrMalformed, "malformed status line %q", truncate(line))
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || (len(line) > 12 && line[12] != ' ') {
		return nil, protoErr(0, ErrMalformed, "malformed status line %q", truncate(line))
	}
	resp := &Response{Proto: "ICAP/1.0", StatusCode: code, UseOriginalBody: -1}
	if code == StatusContinue {
		resp.Status = "100 Continue"
	} else if code == StatusOK && string(line[9:]) == "200 OK" {
		resp.Status = "200 OK"
	} else {
		resp.Status = string(line[9:])
	}
	if _, err := readFields(cc.br, lim.maxHeader-n, &resp.Header, nil, &cc.p); err != nil {
		if err == errLineLimit {
			err = protoErr(0, ErrHeaderTooLarge, "response header")
		}
		return nil, fmt.Errorf("icap: read response header: %w", err)
	}
	if code == StatusContinue {
		return resp, nil
	}
	resp.Body = http.NoBody
	if v := resp.Header["Encapsulated"]; len(v) > 0 {
		if resp.Encapsulated, err = ParseEncapsulated(v[0]); err != nil {
			return nil, err
		}
		if !resp.Encapsulated.validResponse() {
			return nil, protoErr(0, ErrBadEncapsulated, "Encapsulated %q not valid in a response", v[0])
		}
		if resp.Request, resp.Response, err = readHeads(cc.br, &resp.Encapsulated, lim, &cc.p, nil); err != nil {
			return nil, err
		}
	}
	closeAfter := req.Close || hasToken(resp.Header["Connection"], "close")
	if v, ok := resp.Header["Trailer"]; ok {
		resp.ICAPTrailer = announcedTrailer(v)
	}
	if b := resp.Encapsulated.Body(); b != 0 && b != NullBody {
		// A new body per response: the caller may still hold it (and
		// Close it) after the connection went back to the pool.
		cb := &clientBody{cc: cc, resp: resp, closeAfter: closeAfter}
		cb.cr.Reset(cc.br)
		resp.Body = cb
		switch {
		case b == ReqBody && resp.Request != nil:
			resp.Request.Body = cb
		case b == ResBody && resp.Response != nil:
			resp.Response.Body = cb
		}
		return resp, nil
	}
	if resp.ICAPTrailer != nil {
		// No body: the ICAP trailer follows the encapsulated headers.
		if err := readICAPTrailer(cc.br, lim.maxHeader, &resp.ICAPTrailer, &cc.p); err != nil {
			return nil, err
		}
	}
	// No body: the transaction is over once our request body is written.
	if err := cc.waitWriter(); err != nil || closeAfter {
		cc.broken = true
	}
	cc.cl.putConn(cc)
	return resp, nil
}

// clientBody streams a response body and returns the connection to the
// pool at its end.
type clientBody struct {
	cc         *clientConn
	cr         chunked.Reader
	resp       *Response
	closeAfter bool
	done       bool
	err        error
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n, err := b.cr.Read(p)
	if err != nil {
		if b.finish(err); b.err != nil {
			err = b.err
		}
		if err == io.EOF && n > 0 {
			return n, nil
		}
	}
	return n, err
}

// WriteTo passes body data straight from the connection buffer to w.
func (b *clientBody) WriteTo(w io.Writer) (int64, error) {
	if b.done {
		return 0, b.err
	}
	n, err := b.cr.WriteTo(w)
	if err == nil {
		b.finish(io.EOF)
		err = b.err
	} else if b.cr.Err() != nil {
		b.finish(b.cr.Err())
	} else {
		b.finish(err) // the destination failed: the connection is mid-body
	}
	return n, err
}

func (b *clientBody) finish(err error) {
	b.done = true
	cc := b.cc
	if err == io.EOF {
		b.resp.Trailer = b.cr.Trailer()
		b.resp.UseOriginalBody = b.cr.UseOriginalBody()
		if b.resp.ICAPTrailer != nil {
			lim := orDefault(cc.cl.MaxHeaderBytes, DefaultMaxHeaderBytes)
			if terr := readICAPTrailer(cc.br, lim, &b.resp.ICAPTrailer, &cc.p); terr != nil {
				b.err = terr
				cc.broken = true
			}
		}
	} else {
		b.err = err
		cc.broken = true
	}
	if werr := cc.waitWriter(); werr != nil || b.closeAfter {
		cc.broken = true
	}
	cc.cl.putConn(cc)
}

// Close discards the rest of the body (up to 256 KB; more closes the
// connection) and releases the connection.
func (b *clientBody) Close() error {
	if b.done {
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(&b.cr, 256<<10))
	if err == nil && b.cr.Done() {
		b.finish(io.EOF)
		return nil
	}
	_ = n
	b.cc.broken = true
	b.cc.nc.Close()
	b.finish(errors.New("icap: body closed"))
	return nil
}
