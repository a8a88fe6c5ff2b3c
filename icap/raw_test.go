package icap_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// rawResp is an ICAP response read byte by byte off the wire, so that
// tests check exactly what the server sent.
type rawResp struct {
	Status  int
	Header  textproto.MIMEHeader
	Encap   string // the encapsulated HTTP header bytes
	Body    []byte // dechunked
	LastExt string // extensions of the last chunk
	Trailer string // raw trailer lines
	// ICAPTrailer holds the raw ICAP trailer lines (after the message),
	// read when the response has a Trailer header.
	ICAPTrailer string
	Chunks      int
}

// rawConn is a client connection for wire-level tests. Every read has a
// deadline so a server bug fails the test instead of hanging it.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	addr = strings.TrimPrefix(addr, "icap://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// crlf turns LF line ends of a test literal into CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *rawConn) read() rawResp {
	rc.t.Helper()
	r, err := rc.tryRead()
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	return r
}

// expectEOF checks that the server closed the connection.
func (rc *rawConn) expectEOF() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := rc.br.ReadByte()
	if err == nil {
		rc.t.Fatalf("connection still open: read %q", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		rc.t.Fatal("connection still open after 10s")
	}
}

func (rc *rawConn) tryRead() (rawResp, error) {
	r, err := rc.readMessage()
	if err != nil || r.Header.Get("Trailer") == "" {
		return r, err
	}
	tp := textproto.NewReader(rc.br)
	for {
		l, err := tp.ReadLine()
		if err != nil {
			return r, fmt.Errorf("ICAP trailer: %w", err)
		}
		if l == "" {
			return r, nil
		}
		r.ICAPTrailer += l + "\n"
	}
}

// readMessage reads a response up to the end of its encapsulated message.
func (rc *rawConn) readMessage() (rawResp, error) {
	var r rawResp
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewReader(rc.br)
	line, err := tp.ReadLine()
	if err != nil {
		return r, err
	}
	if !strings.HasPrefix(line, "ICAP/1.0 ") || len(line) < 12 {
		return r, fmt.Errorf("bad status line %q", line)
	}
	r.Status, err = strconv.Atoi(line[9:12])
	if err != nil {
		return r, err
	}
	r.Header, err = tp.ReadMIMEHeader()
	if err != nil {
		return r, err
	}
	enc := r.Header.Get("Encapsulated")
	if enc == "" {
		return r, nil
	}
	e, err := icap.ParseEncapsulated(enc)
	if err != nil {
		return r, err
	}
	last := e.Entries[e.N-1]
	head := make([]byte, last.Offset)
	if _, err := io.ReadFull(rc.br, head); err != nil {
		return r, err
	}
	r.Encap = string(head)
	if last.Section == icap.NullBody {
		return r, nil
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return r, err
		}
		size, ext, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil {
			return r, fmt.Errorf("chunk size %q", line)
		}
		if n == 0 {
			r.LastExt = strings.TrimSpace(ext)
			for {
				l, err := tp.ReadLine()
				if err != nil {
					return r, err
				}
				if l == "" {
					return r, nil
				}
				r.Trailer += l + "\n"
			}
		}
		r.Chunks++
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.br, buf); err != nil {
			return r, err
		}
		if string(buf[n:]) != "\r\n" {
			return r, fmt.Errorf("chunk not followed by CRLF")
		}
		r.Body = append(r.Body, buf[:n]...)
	}
}

// respmod builds a RESPMOD request with the given extra ICAP header lines
// (LF-terminated) and an HTTP response with body sent as chunks.
func respmod(path, extra string, body string, chunked string) string {
	res := crlf("HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n")
	return crlf("RESPMOD icap://127.0.0.1"+path+" ICAP/1.0\nHost: 127.0.0.1\n"+extra) +
		"Encapsulated: res-hdr=0, res-body=" + strconv.Itoa(len(res)) + "\r\n\r\n" + res + chunked
}

// chunks encodes parts as chunks followed by a last chunk with ext.
func chunks(ext string, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	b.WriteString("0")
	if ext != "" {
		b.WriteString("; " + ext)
	}
	b.WriteString("\r\n\r\n")
	return b.String()
}
