package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// The raw load generator: the cheapest client that still speaks ICAP
// correctly, so that the generator, which shares the cores with the
// server under test, takes as little CPU per transaction as possible.
//
//   - Requests are serialised once per run: a transaction writes one
//     prebuilt byte slice (two with a preview: the preview, and the rest
//     after 100 Continue), in one write each.
//   - Responses are read with a minimal parser: the status code, the
//     Encapsulated and Connection fields, the encapsulated header skipped
//     by its offset, chunk sizes walked to find the end of the body. No
//     header map, no allocation per transaction.
//   - Large chunks are discarded without copying them to user space:
//     splice(2) from the socket through a pipe into /dev/null
//     (os.File.ReadFrom does that for a *net.TCPConn source).
//   - Large bodies (sendfileMin and more) are not copied from user space
//     either: they sit in a temporary file, in the page cache, and go out
//     with sendfile(2) (net.TCPConn.ReadFrom of an *os.File).
//   - Requests that might not fit in the socket buffers (over syncWrite)
//     are written by one writer goroutine per worker, kept for the whole
//     run, while the response is read; smaller ones are written inline.
//
// The icap.Client path (-client) remains for TLS and as a cross-check.

// syncWrite is the largest request written inline before the response is
// read: a server that echoes while it reads cannot deadlock against a
// client that is not reading yet as long as the request fits in the
// socket buffers.
const syncWrite = 64 << 10

// spliceMin is the smallest rest of a chunk discarded with splice(2)
// rather than through the read buffer.
const spliceMin = 64 << 10

// sendfileMin is the smallest chunk sent from the body file with
// sendfile(2) instead of from memory.
const sendfileMin = 64 << 10

// part is one write of a request: pre, then n bytes of the body file
// from off (sendfile), then post.
type part struct {
	pre    []byte
	off, n int64
	post   []byte
}

func (p *part) size() int64 { return int64(len(p.pre)) + p.n + int64(len(p.post)) }

// wire is a request serialised once for the whole run.
type wire struct {
	first part // ICAP head, encapsulated headers, body or preview
	rest  part // after 100 Continue: the rest of the body; empty without preview
	// hasRest tells whether the request has a preview to continue.
	hasRest bool
	sent    int // body bytes sent in first (all of them without preview)
	total   int // body bytes
}

// buildWire serialises the request of options o with body.
func buildWire(o options, body []byte) wire {
	host := o.addr
	var req, res []byte
	switch o.method {
	case "REQMOD":
		req = fmt.Appendf(nil, "POST http://bench.test/upload HTTP/1.1\r\nHost: bench.test\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
	case "RESPMOD":
		req = []byte("GET http://bench.test/file HTTP/1.1\r\nHost: bench.test\r\n\r\n")
		res = fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", len(body))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s icap://%s%s ICAP/1.0\r\nHost: %s\r\n", o.method, host, o.service, host)
	switch {
	case o.allow204 && o.allow206:
		b.WriteString("Allow: 204, 206\r\n")
	case o.allow204:
		b.WriteString("Allow: 204\r\n")
	case o.allow206:
		b.WriteString("Allow: 206\r\n")
	}
	hasBody := o.method != "OPTIONS" && body != nil
	preview := hasBody && o.preview >= 0
	if preview {
		fmt.Fprintf(&b, "Preview: %d\r\n", o.preview)
	}
	if o.method != "OPTIONS" {
		bodyKey := "res-body"
		if o.method == "REQMOD" {
			bodyKey = "req-body"
		}
		if !hasBody {
			bodyKey = "null-body"
		}
		if res != nil {
			fmt.Fprintf(&b, "Encapsulated: req-hdr=0, res-hdr=%d, %s=%d\r\n", len(req), bodyKey, len(req)+len(res))
		} else {
			fmt.Fprintf(&b, "Encapsulated: req-hdr=0, %s=%d\r\n", bodyKey, len(req))
		}
	}
	b.WriteString("\r\n")
	b.Write(req)
	b.Write(res)
	w := wire{total: len(body)}
	// chunk ends p with body[from:to] as one chunk and the last chunk with
	// ext: inline when small, else as a sendfile range.
	chunk := func(p *part, b *bytes.Buffer, from, to int, ext string) {
		if to > from {
			fmt.Fprintf(b, "%x\r\n", to-from)
			if to-from < sendfileMin {
				b.Write(body[from:to])
			} else {
				p.pre = bytes.Clone(b.Bytes())
				p.off, p.n = int64(from), int64(to-from)
				b.Reset()
			}
			b.WriteString("\r\n")
		}
		b.WriteString("0" + ext + "\r\n\r\n")
		if p.n > 0 {
			p.post = b.Bytes()
		} else {
			p.pre = b.Bytes()
		}
	}
	switch {
	case !hasBody:
		w.first.pre = b.Bytes()
	case preview && len(body) <= o.preview:
		chunk(&w.first, &b, 0, len(body), "; ieof")
		w.sent = len(body)
	case preview:
		chunk(&w.first, &b, 0, o.preview, "")
		w.sent = o.preview
		w.hasRest = true
		chunk(&w.rest, new(bytes.Buffer), o.preview, len(body), "")
	default:
		chunk(&w.first, &b, 0, len(body), "")
		w.sent = len(body)
	}
	return w
}

// needsFile reports whether w sends part of the body with sendfile.
func (w *wire) needsFile() bool { return w.first.n > 0 || w.rest.n > 0 }

// bodyFile writes body to an unlinked temporary file for sendfile(2); the
// workers open it through /proc/self/fd so that each has its own offset.
func bodyFile(body []byte) (*os.File, error) {
	f, err := os.CreateTemp("", "icapbench-body-")
	if err != nil {
		return nil, fmt.Errorf("body file: %w", err)
	}
	os.Remove(f.Name())
	if _, err := f.Write(body); err != nil {
		f.Close()
		return nil, fmt.Errorf("body file: %w", err)
	}
	return f, nil
}

// rawConn is one worker's connection.
type rawConn struct {
	nc      *net.TCPConn
	br      *bufio.Reader
	devNull *os.File
	body    *os.File // this worker's descriptor of the body file, or nil
	timeout time.Duration
	// The writer goroutine for large requests.
	wreq  chan *part
	wdone chan error
}

// dialRaw connects a worker; with a body file it opens its own descriptor
// of it (sendfile uses and moves the file offset).
func dialRaw(ctx context.Context, o options, devNull, body *os.File) (*rawConn, error) {
	d := net.Dialer{Timeout: o.timeout}
	c, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", o.addr, err)
	}
	tc := c.(*net.TCPConn)
	rc := &rawConn{nc: tc, br: bufio.NewReaderSize(tc, 64<<10), devNull: devNull, timeout: o.timeout}
	if body != nil {
		if rc.body, err = os.Open(fmt.Sprintf("/proc/self/fd/%d", body.Fd())); err != nil {
			tc.Close()
			return nil, fmt.Errorf("open body file: %w", err)
		}
	}
	return rc, nil
}

func (rc *rawConn) close() {
	if rc.wreq != nil {
		close(rc.wreq)
		rc.wreq = nil
	}
	rc.nc.Close()
	if rc.body != nil {
		rc.body.Close()
	}
}

// write sends p: pre, the file range with sendfile, post.
func (rc *rawConn) write(p *part) error {
	if _, err := rc.nc.Write(p.pre); err != nil || p.n == 0 {
		return err
	}
	if _, err := rc.body.Seek(p.off, io.SeekStart); err != nil {
		return err
	}
	m, err := rc.nc.ReadFrom(io.LimitReader(rc.body, p.n))
	if err == nil && m < p.n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	_, err = rc.nc.Write(p.post)
	return err
}

// send writes p inline or, when large, through the writer goroutine; wait
// reports the outcome of an asynchronous write.
func (rc *rawConn) send(p *part) (async bool, err error) {
	if p.size() <= syncWrite {
		return false, rc.write(p)
	}
	if rc.wreq == nil {
		rc.wreq, rc.wdone = make(chan *part), make(chan error, 1)
		go func(req <-chan *part, done chan<- error) {
			for p := range req {
				done <- rc.write(p)
			}
		}(rc.wreq, rc.wdone)
	}
	rc.wreq <- p
	return true, nil
}

// response is what the raw reader keeps of a response.
type rawResponse struct {
	status int
	body   int64 // dechunked body bytes
	close  bool
}

var errMalformed = errors.New("malformed response")

// transact runs one transaction on rc.
func (rc *rawConn) transact(w *wire) (rawResponse, int, error) {
	rc.nc.SetDeadline(time.Now().Add(rc.timeout))
	async, err := rc.send(&w.first)
	if err != nil {
		return rawResponse{}, 0, err
	}
	sent := w.sent
	resp, err := rc.readResponse()
	if err == nil && resp.status == 100 {
		if !w.hasRest {
			err = errors.New("100 Continue without a preview")
		} else {
			if async {
				if err = <-rc.wdone; err != nil {
					return resp, sent, err
				}
			}
			async, err = rc.send(&w.rest)
			sent = w.total
			if err == nil {
				resp, err = rc.readResponse()
			}
		}
	}
	if async {
		if werr := <-rc.wdone; err == nil {
			err = werr
		}
	}
	return resp, sent, err
}

// readResponse reads one response with the minimal parser.
func (rc *rawConn) readResponse() (rawResponse, error) {
	var r rawResponse
	br := rc.br
	line, err := br.ReadSlice('\n')
	if err != nil {
		return r, fmt.Errorf("read status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("ICAP/1.0 ")) {
		return r, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	r.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	bodyAt, hasBody := 0, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return r, fmt.Errorf("read header: %w", err)
		}
		if len(line) <= 2 {
			break
		}
		switch line[0] | 0x20 {
		case 'e':
			if v, ok := fieldValue(line, "encapsulated"); ok {
				if bodyAt, hasBody, err = lastOffset(v); err != nil {
					return r, err
				}
			}
		case 'c':
			if v, ok := fieldValue(line, "connection"); ok && bytes.Contains(bytes.ToLower(v), []byte("close")) {
				r.close = true
			}
		}
	}
	if r.status == 100 {
		return r, nil
	}
	if _, err := br.Discard(bodyAt); err != nil {
		return r, fmt.Errorf("read encapsulated header: %w", err)
	}
	if hasBody {
		r.body, err = rc.discardChunks()
	}
	return r, err
}

// fieldValue returns the value of a header line if its name is name
// (lower case).
func fieldValue(line []byte, name string) ([]byte, bool) {
	if len(line) <= len(name) || line[len(name)] != ':' || !bytes.EqualFold(line[:len(name)], []byte(name)) {
		return nil, false
	}
	return bytes.TrimSpace(line[len(name)+1:]), true
}

// lastOffset returns the offset of the last Encapsulated entry and
// whether it is a body (not null-body).
func lastOffset(v []byte) (int, bool, error) {
	i := bytes.LastIndexByte(v, ',')
	last := bytes.TrimSpace(v[i+1:])
	name, num, ok := bytes.Cut(last, []byte("="))
	n, err := strconv.Atoi(string(num))
	if !ok || err != nil || n < 0 {
		return 0, false, fmt.Errorf("%w: Encapsulated %q", errMalformed, v)
	}
	return n, !bytes.Equal(name, []byte("null-body")), nil
}

// discardChunks reads a chunked body to its end and returns its size.
func (rc *rawConn) discardChunks() (int64, error) {
	br := rc.br
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, fmt.Errorf("read chunk size: %w", err)
		}
		var n int64
		i := 0
		for ; i < len(line); i++ {
			c := line[i] | 0x20
			switch {
			case '0' <= c && c <= '9':
				n = n<<4 | int64(c-'0')
			case 'a' <= c && c <= 'f':
				n = n<<4 | int64(c-'a'+10)
			default:
				goto done
			}
		}
	done:
		if i == 0 || i > 15 {
			return total, fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if n == 0 {
			for { // trailers up to the empty line
				line, err = br.ReadSlice('\n')
				if err != nil {
					return total, fmt.Errorf("read trailer: %w", err)
				}
				if len(line) <= 2 {
					return total, nil
				}
			}
		}
		total += n
		if err := rc.skip(n); err != nil {
			return total, err
		}
		if _, err := br.Discard(2); err != nil {
			return total, fmt.Errorf("read chunk end: %w", err)
		}
	}
}

// skip discards n bytes of chunk data: the buffered ones, then large
// rests spliced from the socket into /dev/null.
func (rc *rawConn) skip(n int64) error {
	br := rc.br
	k := min(int64(br.Buffered()), n)
	br.Discard(int(k))
	n -= k
	if n >= spliceMin && rc.devNull != nil {
		m, err := rc.devNull.ReadFrom(io.LimitReader(rc.nc, n))
		n -= m
		if err != nil {
			return fmt.Errorf("discard chunk: %w", err)
		}
	}
	if n > 0 {
		if _, err := br.Discard(int(n)); err != nil {
			return fmt.Errorf("read chunk: %w", err)
		}
	}
	return nil
}
