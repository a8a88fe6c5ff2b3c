package icap

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCloseIdleConnsSparesArrivedRequest: Shutdown closes idle
// connections, but not one whose next request has already arrived while
// its goroutine has not run yet (a loaded machine can take milliseconds):
// closing it would reset a request the client sent, and Squid fails a
// RESPMOD whose preview it has sent rather than retrying it. The
// connection's goroutine serves that request with "Connection: close".
func TestCloseIdleConnsSparesArrivedRequest(t *testing.T) {
	if !canWaitReadable {
		t.Skip("no readiness wait on this platform: idle connections hold a one-byte read")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	parked, release := make(chan struct{}), make(chan struct{})
	idles := 0
	mux := NewServeMux()
	mux.HandleFunc("/echo", func(w ResponseWriter, r *Request) { NoModification(w, r) }, ServiceOptions{})
	srv := &Server{Handler: mux, ConnState: func(_ net.Conn, st ConnState) {
		// Hold the connection's goroutine idle after its first
		// transaction, before it waits for the next request.
		if st == StateIdle {
			if idles++; idles == 2 {
				close(parked)
				<-release
			}
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req := strings.ReplaceAll("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n", "\n", "\r\n")
	read := func() *http.Response {
		t.Helper()
		// An ICAP response head parses as an HTTP one with the
		// protocol name swapped.
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		tp := strings.Replace(line, "ICAP/1.0", "HTTP/1.1", 1)
		rest, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(tp), br)), nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		return rest
	}
	io.WriteString(c, req)
	if r := read(); r.StatusCode != 200 {
		t.Fatalf("first OPTIONS: %d", r.StatusCode)
	}
	<-parked
	io.WriteString(c, req) // arrives while the connection counts as idle
	srv.inShutdown.Store(true)
	if srv.closeIdleConns() {
		t.Fatal("closeIdleConns reports no connection left")
	}
	close(release)
	r := read()
	if r.StatusCode != 200 || !r.Close { // ReadResponse turns "Connection: close" into Close
		t.Fatalf("request that arrived while idle, during shutdown: %d %v, want 200 with Connection: close", r.StatusCode, r.Header)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the response: %v, want EOF", err)
	}
}
