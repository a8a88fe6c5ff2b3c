package icap

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The BenchmarkServe* benchmarks measure the server's own per-request
// cost: one connection's loop (waitRequest, parsing, routing, the handler,
// the response, finish) against an in-memory connection that hands out one
// request at a time, as a client waiting for each answer does, and
// discards the answers. No syscalls and no client: ns/op and allocs/op are
// the server's alone. The requests are those cmd/icapbench sends.
//
//	go test ./icap -run '^$' -bench Serve -benchmem -cpu 1

// benchWire returns the requests icapbench sends for the workloads of
// bench/icap-vs-cicap.sh.
func benchWire(method string, size, preview int, allow204 bool) []byte {
	var b bytes.Buffer
	b.WriteString(method + " icap://127.0.0.1:1344/echo ICAP/1.0\r\nHost: 127.0.0.1:1344\r\n")
	if method == MethodOPTIONS {
		b.WriteString("\r\n")
		return b.Bytes()
	}
	req := "GET http://bench.test/file HTTP/1.1\r\nHost: bench.test\r\n\r\n"
	res := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	if allow204 {
		b.WriteString("Allow: 204\r\n")
	}
	sent := size
	if preview >= 0 {
		b.WriteString("Preview: " + strconv.Itoa(preview) + "\r\n")
		sent = min(size, preview)
	}
	b.WriteString("Encapsulated: req-hdr=0, res-hdr=" + strconv.Itoa(len(req)) + ", res-body=" + strconv.Itoa(len(req)+len(res)) + "\r\n\r\n")
	b.WriteString(req + res)
	b.WriteString(strconv.FormatInt(int64(sent), 16) + "\r\n")
	b.Write(bytes.Repeat([]byte("x"), sent))
	b.WriteString("\r\n0\r\n\r\n")
	return b.Bytes()
}

// pingPongConn is a net.Conn that serves wire n times, handing out the
// next copy only after the previous one was answered (a Write after the
// whole request was read), and then io.EOF.
type pingPongConn struct {
	wire    []byte
	left    int // requests still to serve after the current one
	off     int // read position in the current request
	first   []byte
	written int64
}

var errNotReady = errors.New("pingPongConn: read with no request outstanding (the server waits for input it will never get)")

func (c *pingPongConn) Read(p []byte) (int, error) {
	if c.off == len(c.wire) {
		if c.left == 0 {
			return 0, io.EOF
		}
		return 0, errNotReady
	}
	n := copy(p, c.wire[c.off:])
	c.off += n
	return n, nil
}

func (c *pingPongConn) Write(p []byte) (int, error) {
	if c.first == nil {
		c.first = append([]byte(nil), p...)
	}
	c.written += int64(len(p))
	if c.off == len(c.wire) && c.left > 0 {
		c.left--
		c.off = 0
	}
	return len(p), nil
}

func (c *pingPongConn) Close() error                       { return nil }
func (c *pingPongConn) LocalAddr() net.Addr                { return benchAddr }
func (c *pingPongConn) RemoteAddr() net.Addr               { return benchAddr }
func (c *pingPongConn) SetDeadline(t time.Time) error      { return nil }
func (c *pingPongConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *pingPongConn) SetWriteDeadline(t time.Time) error { return nil }

// SyscallConn makes the server wait for requests as on a TCP connection
// (readWaiter) rather than with the one-byte read of TLS connections.
func (c *pingPongConn) SyscallConn() (syscall.RawConn, error) { return readyRawConn{}, nil }

var benchAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// readyRawConn reports the connection readable at once.
type readyRawConn struct{}

func (readyRawConn) Control(func(uintptr)) error    { return nil }
func (readyRawConn) Read(func(uintptr) bool) error  { return nil }
func (readyRawConn) Write(func(uintptr) bool) error { return nil }

// benchMux is a mux with icapd's echo service registration.
func benchMux() *ServeMux {
	mux := NewServeMux()
	mux.HandleFunc("/echo", func(w ResponseWriter, r *Request) { NoModification(w, r) }, ServiceOptions{
		Service: "edgeadapt icapd echo", ServiceID: "echo",
		Allow204: true, Allow206: true, AllowTrailers: true, Preview: DefaultPreview,
		TransferPreview: []string{"*"}, XInclude: []string{"X-Client-IP", "X-Authenticated-User"},
	})
	return mux
}

func benchServe(b *testing.B, wire []byte, wantStatus string, observe bool) {
	s := &Server{Handler: benchMux()}
	if observe {
		var n int64
		s.Observer = func(ti *TransactionInfo) { n += ti.BytesIn + ti.BytesOut + int64(ti.Status) }
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	b.ResetTimer()
	pc := &pingPongConn{wire: wire, left: b.N - 1}
	c := s.newConn(pc)
	s.nconns.Add(1)
	s.trackConn(c, true)
	c.serve(false)
	b.StopTimer()
	if pc.left != 0 || pc.off != len(wire) {
		b.Fatalf("served %d of %d requests", b.N-pc.left, b.N)
	}
	if !bytes.HasPrefix(pc.first, []byte("ICAP/1.0 "+wantStatus)) {
		b.Fatalf("first response %q, want status %s", pc.first, wantStatus)
	}
	b.ReportMetric(float64(pc.written)/float64(b.N), "B-out/op")
}

func BenchmarkServeOPTIONS(b *testing.B) {
	benchServe(b, benchWire(MethodOPTIONS, 0, -1, false), "200", false)
}

func BenchmarkServeOPTIONSObserved(b *testing.B) {
	benchServe(b, benchWire(MethodOPTIONS, 0, -1, false), "200", true)
}

func BenchmarkServePreview204(b *testing.B) {
	benchServe(b, benchWire(MethodRESPMOD, 10240, 1024, true), "204", false)
}

func BenchmarkServeEcho10KB(b *testing.B) {
	benchServe(b, benchWire(MethodRESPMOD, 10240, -1, false), "200", false)
}
