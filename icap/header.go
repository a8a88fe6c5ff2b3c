package icap

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/edgeadapt/edgeadapt/icap/internal/chunked"
)

var errEOF = io.EOF

// errLineLimit is returned by readLine when a line would exceed its limit;
// the caller turns it into ErrHeaderTooLarge or ErrBadEncapsulated.
var errLineLimit = protoErr(StatusBadRequest, ErrHeaderTooLarge, "line over limit")

// readLine reads one line ending in LF (CRLF or bare LF), consuming at most
// limit bytes. It returns the line without its terminator and the number of
// bytes consumed. Lines longer than the bufio buffer are assembled in
// *scratch. The returned slice is valid until the next read.
func readLine(br *bufio.Reader, limit int, scratch *[]byte) ([]byte, int, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append((*scratch)[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(buf) > limit {
				return nil, len(buf), errLineLimit
			}
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		*scratch = buf
		line = buf
	}
	n := len(line)
	if err != nil {
		if err == io.EOF && n > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, n, err
	}
	if n > limit {
		return nil, n, errLineLimit
	}
	line = line[:n-1]
	if k := len(line); k > 0 && line[k-1] == '\r' {
		line = line[:k-1]
	}
	return line, n, nil
}

// parser holds the scratch buffers of header parsing, reused per
// connection so that parsing allocates only the strings it returns.
type parser struct {
	line []byte     // a line longer than the bufio buffer
	vals []byte     // the values of the current header block
	ents []fieldEnt // their keys and positions in vals
	strs []string   // after readFields: the values of ents, as strings

	// The last ICAP URI parsed on this connection, kept read-only.
	lastTarget string
	lastURL    *url.URL
	// The last encapsulated request target and its URL, likewise.
	lastReqTarget string
	lastReqURL    *url.URL
}

type fieldEnt struct {
	key        string
	start, end int
}

// readFields reads header fields up to and including the empty line,
// consuming at most limit bytes, into h. It returns the bytes consumed.
// All values of the block share one string allocation and one []string
// backing array. If *hp is nil, it is made with room for exactly the
// fields read (a map that never grows). If vals is not nil, the values'
// backing array is taken from *vals when it is large enough, and kept
// there for the next call.
func readFields(br *bufio.Reader, limit int, hp *http.Header, vals *[]string, p *parser) (int, error) {
	total := 0
	p.vals, p.ents, p.strs = p.vals[:0], p.ents[:0], nil
	for {
		line, n, err := readLine(br, limit-total, &p.line)
		total += n
		if err != nil {
			return total, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' { // obsolete line folding (RFC 2616 LWS)
			if len(p.ents) == 0 {
				return total, protoErr(StatusBadRequest, ErrMalformed, "continuation line before any header")
			}
			p.vals = append(p.vals, ' ')
			p.vals = append(p.vals, trim(line)...)
			p.ents[len(p.ents)-1].end = len(p.vals)
			continue
		}
		i := 0
		for i < len(line) && line[i] != ':' {
			if !isTokenChar(line[i]) {
				return total, protoErr(StatusBadRequest, ErrMalformed, "invalid header field name %q", truncate(line))
			}
			i++
		}
		if i == 0 || i == len(line) {
			return total, protoErr(StatusBadRequest, ErrMalformed, "malformed header line %q", truncate(line))
		}
		key := canonicalKey(line[:i])
		start := len(p.vals)
		p.vals = append(p.vals, trim(line[i+1:])...)
		p.ents = append(p.ents, fieldEnt{key, start, len(p.vals)})
	}
	if *hp == nil {
		*hp = make(http.Header, len(p.ents))
	}
	h := *hp
	if len(p.ents) == 0 {
		return total, nil
	}
	all := string(p.vals)
	var strs []string
	switch n := len(p.ents); {
	case vals != nil && cap(*vals) >= n:
		strs = (*vals)[:n]
	case vals != nil && n <= maxReuseFields:
		strs = make([]string, n, max(n, 8))
		*vals = strs
	default:
		strs = make([]string, n)
	}
	p.strs = strs
	for i, e := range p.ents {
		strs[i] = all[e.start:e.end]
		if vs, ok := h[e.key]; ok {
			h[e.key] = append(vs, strs[i])
		} else {
			h[e.key] = strs[i : i+1 : i+1]
		}
	}
	return total, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func trim(b []byte) []byte { return chunked.TrimSpace(b) }

// commonKeys interns the canonical forms of frequent ICAP and HTTP header
// names, so that parsing them does not allocate.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Age", "Allow", "Authorization", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location",
		"Content-Range", "Content-Type", "Cookie", "Date", "Encapsulated", "Etag", "Expires",
		"Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Istag", "Keep-Alive", "Last-Modified", "Location",
		"Max-Connections", "Methods", "Options-Ttl", "Origin", "Pragma", "Preview",
		"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Range",
		"Referer", "Server", "Service", "Service-Id", "Serviceid", "Set-Cookie", "Te",
		"Trailer", "Transfer-Complete", "Transfer-Encoding", "Transfer-Ignore",
		"Transfer-Preview", "Upgrade", "User-Agent", "Vary", "Via", "Www-Authenticate",
		"X-Authenticated-User", "X-Authenticated-Groups", "X-Client-Ip", "X-Forwarded-For",
		"X-Include", "X-Server-Ip", "X-Subscriber-Id",
	} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	m["ISTag"] = "Istag"
	m["X-Client-IP"] = "X-Client-Ip"
	m["Service-ID"] = "Service-Id"
	m["ServiceId"] = "Serviceid"
	m["Options-TTL"] = "Options-Ttl"
	m["ETag"] = "Etag"
	m["WWW-Authenticate"] = "Www-Authenticate"
	m["TE"] = "Te"
	return m
}()

func canonicalKey(b []byte) string {
	if s, ok := commonKeys[string(b)]; ok {
		return s
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// wireKeys gives the spelling written on the wire for canonical keys whose
// conventional ICAP spelling differs from Go's canonical form.
var wireKeys = map[string]string{
	"Istag":       "ISTag",
	"Service-Id":  "Service-ID",
	"Serviceid":   "ServiceId",
	"Options-Ttl": "Options-TTL",
	"X-Client-Ip": "X-Client-IP",
	"X-Server-Ip": "X-Server-IP",
	"Etag":        "ETag",
	"Te":          "TE",
}

func wireKey(k string) string {
	if w, ok := wireKeys[k]; ok {
		return w
	}
	return k
}

func isTokenChar(c byte) bool { return chunked.IsTokenChar(c) }

// hopByHop lists the HTTP hop-by-hop headers (RFC 7230 section 6.1, RFC
// 2616 section 13.5.1) that do not belong in an encapsulated message: the
// ICAP client applies its own transfer coding and connection management.
var hopByHop = map[string]bool{
	"Connection":        true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Te":                true,
	"Trailer":           true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
}

// hasHopByHop reports whether the fields just read include a hop-by-hop
// header (Connection names the others to remove), so that the common
// message without one costs no map deletions.
func hasHopByHop(ents []fieldEnt) bool {
	for _, e := range ents {
		switch e.key {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			return true
		}
	}
	return false
}

// removeHopByHop deletes hop-by-hop headers, including those named by
// Connection, from h.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	for k := range hopByHop {
		delete(h, k)
	}
}

var commonMethods = map[string]string{
	"GET": "GET", "POST": "POST", "HEAD": "HEAD", "PUT": "PUT", "DELETE": "DELETE",
	"CONNECT": "CONNECT", "OPTIONS": "OPTIONS", "PATCH": "PATCH", "TRACE": "TRACE",
}

func internMethod(b []byte) string {
	if s, ok := commonMethods[string(b)]; ok {
		return s
	}
	return string(b)
}

var commonProtos = map[string]string{"HTTP/1.1": "HTTP/1.1", "HTTP/1.0": "HTTP/1.0", "HTTP/0.9": "HTTP/0.9", "HTTP/2.0": "HTTP/2.0", "HTTP/2": "HTTP/2"}

func internProto(b []byte) string {
	if s, ok := commonProtos[string(b)]; ok {
		return s
	}
	return string(b)
}

// readHTTPHead reads one encapsulated HTTP header section of exactly
// size bytes (the difference of two Encapsulated offsets). It never reads
// past the section: a header ending early or late is ErrBadEncapsulated.
// The message is parsed into *dst's Request or Response if dst is not
// nil, else into new ones.
func readHTTPHead(br *bufio.Reader, size, max int, isRequest bool, p *parser, dst *heads) (*http.Request, *http.Response, error) {
	limit := min(size, max)
	tooBig := func(n int) error {
		if size > max {
			return protoErr(StatusBadRequest, ErrHeaderTooLarge, "encapsulated HTTP header over %d bytes", max)
		}
		return protoErr(StatusBadRequest, ErrBadEncapsulated, "encapsulated HTTP header longer than its Encapsulated offsets say (%d bytes)", size)
	}
	line, n, err := readLine(br, limit, &p.line)
	if err == errLineLimit {
		return nil, nil, tooBig(n)
	}
	if err != nil {
		return nil, nil, err
	}
	var req *http.Request
	var resp *http.Response
	if isRequest {
		if dst != nil {
			req = &dst.req
		}
		req, err = parseRequestLine(line, req, p, dst)
	} else {
		if dst != nil {
			resp = &dst.resp
		}
		resp, err = parseStatusLine(line, resp)
	}
	if err != nil {
		return nil, nil, err
	}
	var h http.Header
	var vals *[]string
	if dst != nil {
		// The block's maps and value arrays, emptied, for reuse.
		if isRequest {
			h, vals = dst.reqHeader, &dst.reqVals
		} else {
			h, vals = dst.respHeader, &dst.respVals
		}
	}
	m, err := readFields(br, limit-n, &h, vals, p)
	if dst != nil {
		if isRequest {
			dst.reqHeader = h
		} else {
			dst.respHeader = h
		}
	}
	if err == errLineLimit {
		return nil, nil, tooBig(n + m)
	}
	if err != nil {
		return nil, nil, err
	}
	if req != nil {
		req.Header = h
	} else {
		resp.Header = h
	}
	if n+m != size {
		return nil, nil, protoErr(StatusBadRequest, ErrBadEncapsulated, "encapsulated HTTP header is %d bytes, Encapsulated offsets say %d", n+m, size)
	}
	cl := int64(-1)
	if v := h["Content-Length"]; len(v) > 0 {
		if x, err := strconv.ParseInt(v[0], 10, 64); err == nil && x >= 0 {
			cl = x
		}
	}
	// Transfer-Encoding is hop-by-hop: the ICAP body is always chunked by
	// ICAP itself, so the encapsulated message's own framing is dropped.
	if hasHopByHop(p.ents) {
		removeHopByHop(h)
	}
	if req != nil {
		req.ContentLength = cl
		if req.Host == "" {
			req.Host = h.Get("Host")
		}
		return req, nil, nil
	}
	resp.ContentLength = cl
	return nil, resp, nil
}

// heads is storage for the encapsulated messages of a request, allocated
// with it.
type heads struct {
	req  http.Request
	resp http.Response
	// The maps behind req.Header and resp.Header and their values'
	// backing arrays, kept for reuse (see requestBlock).
	reqHeader, respHeader http.Header
	reqVals, respVals     []string
	reqURL                url.URL // req.URL when copied from the parser's last one
}

// parseRequestLine parses an encapsulated request line into dst (a new
// http.Request if nil). With p and h, a target equal to the previous one
// on the connection reuses its string and a copy of its parsed URL (in
// h.reqURL), as readRequest does for the ICAP URI.
func parseRequestLine(line []byte, dst *http.Request, p *parser, h *heads) (*http.Request, error) {
	i := indexByte(line, ' ')
	if i <= 0 {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed encapsulated request line %q", truncate(line))
	}
	j := lastIndexByte(line, ' ')
	if j <= i+1 {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed encapsulated request line %q", truncate(line))
	}
	method := internMethod(line[:i])
	proto := internProto(line[j+1:])
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed HTTP version %q", truncate(line[j+1:]))
	}
	var u *url.URL
	var target string
	switch t := line[i+1 : j]; {
	case method == "CONNECT" && (len(t) == 0 || t[0] != '/'):
		target = string(t)
		u = &url.URL{Host: target}
	case p != nil && h != nil && p.lastReqURL != nil && string(t) == p.lastReqTarget:
		target = p.lastReqTarget
		h.reqURL = *p.lastReqURL
		u = &h.reqURL
	default:
		target = string(t)
		var err error
		if u, err = url.ParseRequestURI(target); err != nil {
			return nil, protoErr(StatusBadRequest, ErrMalformed, "encapsulated request URI %q: %v", target, err)
		}
		if p != nil && h != nil {
			c := *u
			p.lastReqTarget, p.lastReqURL = target, &c
		}
	}
	if dst == nil {
		dst = new(http.Request)
	}
	*dst = http.Request{
		Method:     method,
		URL:        u,
		RequestURI: target,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Host:       u.Host,
		Body:       http.NoBody,
	}
	return dst, nil
}

// commonStatus interns the most frequent encapsulated status texts.
var commonStatus = map[string]string{
	"200 OK": "200 OK", "204 No Content": "204 No Content", "206 Partial Content": "206 Partial Content",
	"301 Moved Permanently": "301 Moved Permanently", "302 Found": "302 Found", "304 Not Modified": "304 Not Modified",
	"403 Forbidden": "403 Forbidden", "404 Not Found": "404 Not Found",
}

// parseStatusLine parses an encapsulated status line into dst (a new
// http.Response if nil).
func parseStatusLine(line []byte, dst *http.Response) (*http.Response, error) {
	i := indexByte(line, ' ')
	if i <= 0 {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed encapsulated status line %q", truncate(line))
	}
	proto := internProto(line[:i])
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed HTTP version %q", truncate(line[:i]))
	}
	status := line[i+1:]
	if len(status) < 3 {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed encapsulated status line %q", truncate(line))
	}
	code := 0
	for _, c := range status[:3] {
		if c < '0' || c > '9' {
			return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed HTTP status code %q", truncate(line))
		}
		code = code*10 + int(c-'0')
	}
	if len(status) > 3 && status[3] != ' ' {
		return nil, protoErr(StatusBadRequest, ErrMalformed, "malformed HTTP status code %q", truncate(line))
	}
	text, ok := commonStatus[string(status)]
	if !ok {
		text = string(status)
	}
	if dst == nil {
		dst = new(http.Response)
	}
	*dst = http.Response{
		Status:     text,
		StatusCode: code,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Body:       http.NoBody,
	}
	return dst, nil
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

func lastIndexByte(b []byte, c byte) int { return bytes.LastIndexByte(b, c) }

// What appendFields leaves out.
const (
	skipHop    = iota + 1 // HTTP hop-by-hop headers and those named by Connection
	skipICAP              // ICAP fields the server writes itself
	skipClient            // ICAP fields the client writes itself
)

// appendFields appends h in wire form, leaving out what skip says, and
// sanitising CR/LF in values. It never modifies h (which may be shared).
func appendFields(b []byte, h http.Header, skip int) []byte {
	var conn []string
	if skip == skipHop {
		conn = h["Connection"]
	}
	for k, vs := range h {
		switch {
		case skip == skipHop && (hopByHop[k] || namedIn(conn, k)):
			continue
		case skip == skipICAP && (k == "Encapsulated" || k == "Date" || k == "Connection" || k == "Trailer"):
			continue
		case skip == skipClient && (k == "Encapsulated" || k == "Preview" || k == "Allow" || k == "Connection" || k == "Trailer"):
			continue
		}
		wk := wireKey(k)
		for _, v := range vs {
			b = append(b, wk...)
			b = append(b, ':', ' ')
			b = appendSanitized(b, v)
			b = append(b, '\r', '\n')
		}
	}
	return b
}

func namedIn(conn []string, k string) bool {
	for _, v := range conn {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), k) {
				return true
			}
		}
	}
	return false
}

func appendSanitized(b []byte, v string) []byte {
	start := len(b)
	b = append(b, v...)
	for i := start; i < len(b); i++ {
		if b[i] == '\r' || b[i] == '\n' {
			b[i] = ' '
		}
	}
	return b
}

// appendRequestHead appends the encapsulated HTTP request header. rawTarget,
// if not empty, is the request target to write (the one received, when the
// URL was not changed).
func appendRequestHead(b []byte, req *http.Request, rawTarget string) []byte {
	method := req.Method
	if method == "" {
		method = "GET"
	}
	b = append(b, method...)
	b = append(b, ' ')
	switch {
	case rawTarget != "":
		b = append(b, rawTarget...)
	case req.URL == nil:
		b = append(b, req.RequestURI...)
	case method == "CONNECT" && req.URL.Path == "" && req.URL.Scheme == "":
		b = append(b, req.URL.Host...)
	default:
		b = append(b, req.URL.String()...)
	}
	b = append(b, ' ')
	if req.Proto != "" {
		b = append(b, req.Proto...)
	} else {
		b = append(b, "HTTP/1.1"...)
	}
	b = append(b, '\r', '\n')
	if req.Host != "" && len(req.Header["Host"]) == 0 {
		b = append(b, "Host: "...)
		b = appendSanitized(b, req.Host)
		b = append(b, '\r', '\n')
	}
	b = appendFields(b, req.Header, skipHop)
	return append(b, '\r', '\n')
}

// appendResponseHead appends the encapsulated HTTP response header.
func appendResponseHead(b []byte, resp *http.Response) []byte {
	if resp.Proto != "" {
		b = append(b, resp.Proto...)
	} else {
		b = append(b, "HTTP/1.1"...)
	}
	b = append(b, ' ')
	code := resp.StatusCode
	if code == 0 {
		code = http.StatusOK
	}
	if st := resp.Status; len(st) > 4 && st[3] == ' ' && st[:3] == strconv.Itoa(code) {
		b = appendSanitized(b, st)
	} else {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, http.StatusText(code)...)
	}
	b = append(b, '\r', '\n')
	b = appendFields(b, resp.Header, skipHop)
	return append(b, '\r', '\n')
}

// copyTrailer copies chunked trailers into dst, allocating it if needed.
func copyTrailer(dst *http.Header, src http.Header) {
	if len(src) == 0 {
		return
	}
	if *dst == nil {
		*dst = make(http.Header, len(src))
	}
	for k, v := range src {
		(*dst)[k] = append((*dst)[k], v...)
	}
}
