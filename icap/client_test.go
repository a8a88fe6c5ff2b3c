package icap_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// TestClientPreview covers the client's preview paths against the server:
// ieof when the body fits, 100 Continue when it does not, 204 without
// sending the rest, and an empty body.
func TestClientPreview(t *testing.T) {
	s, log := startServer(t, testMux(), nil)
	c := s.Client()
	for _, tc := range []struct {
		name      string
		path      string
		body      []byte
		preview   int
		status    int
		continued bool
	}{
		{"fits: ieof, echo", "/full", []byte("hello"), 10, 200, false},
		{"exactly preview size: ieof", "/full", []byte("0123456789"), 10, 200, false},
		{"longer: 100 Continue", "/full", bytes.Repeat([]byte("ab"), 50000), 10, 200, true},
		{"preview 0", "/full", []byte("hello"), 0, 200, true},
		{"204 in preview", "/echo", bytes.Repeat([]byte("x"), 100000), 1024, 204, false},
		{"empty body", "/full", []byte{}, 1024, 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n0 := len(log.waitFor(0))
			req := newReq(t, icap.MethodRESPMOD, s.ServiceURL(tc.path), httpRequest("GET", "http://o/x", nil), nil)
			req.Response = httpResponse(tc.body)
			req.Preview = tc.preview
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != tc.status {
				t.Fatalf("status %d err %v", resp.StatusCode, err)
			}
			if tc.status == 200 && !bytes.Equal(got, tc.body) {
				t.Fatalf("echo %d bytes, want %d", len(got), len(tc.body))
			}
			txs := log.waitFor(n0 + 1)
			if tx := txs[len(txs)-1]; tx.Continued != tc.continued {
				t.Fatalf("server sent 100 Continue: %v, want %v", tx.Continued, tc.continued)
			}
		})
	}
	if s.Accepted() != 1 {
		t.Fatalf("%d connections, want 1", s.Accepted())
	}
}

// slowReader hides the length of its data, so the client writes it
// concurrently with reading the response.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// TestClientEarlyResponse: the server answers before the client has sent
// a 2 MB body; the client keeps writing while it reads the answer, the
// server drains, and the connection is reused.
func TestClientEarlyResponse(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	c := s.Client()
	for range 2 {
		req := newReq(t, icap.MethodREQMOD, s.ServiceURL("/block"), httpRequest("POST", "http://o/upload", nil), nil)
		req.Body = io.NopCloser(slowReader{bytes.NewReader(make([]byte, 2<<20))})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "blocked" || resp.Response.StatusCode != 403 {
			t.Fatalf("got %q %v", b, err)
		}
	}
	if s.Accepted() != 1 {
		t.Fatalf("%d connections, want 1 (drained and reused)", s.Accepted())
	}
}

func TestClientErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var c icap.Client
	if _, err := c.Options(context.Background(), "icap://"+addr+"/x"); err == nil {
		t.Fatal("no error from a closed port")
	}
	if _, err := icap.NewRequest(icap.MethodOPTIONS, "http://x/", nil, nil); err == nil {
		t.Fatal("http:// accepted as an ICAP URL")
	}
	// A server answering garbage.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Read(make([]byte, 1024))
		io.WriteString(conn, "HTTP/1.1 200 OK\r\n\r\n")
	}()
	c.Timeout = 5 * time.Second
	_, err = c.Options(context.Background(), "icap://"+ln.Addr().String()+"/x")
	if !errors.Is(err, icap.ErrMalformed) {
		t.Fatalf("garbage answer: %v", err)
	}
}

func TestClientContextCancel(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	mux := testMux()
	mux.HandleFunc("/hang", func(w icap.ResponseWriter, r *icap.Request) { close(entered); <-release }, icap.ServiceOptions{})
	s, _ := startServer(t, mux, nil)
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := icap.NewRequest(icap.MethodRESPMOD, s.ServiceURL("/hang"), nil, httpResponse([]byte("x")))
	errc := make(chan error, 1)
	go func() {
		_, err := s.Client().Do(req.WithContext(ctx))
		errc <- err
	}()
	<-entered // the request is on the wire, the client waits for the answer
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Do succeeded after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return after its context was canceled")
	}
}

// TestClientSkipsStaleConnection: the server closes an idle pooled
// connection (IdleTimeout); the client notices before reuse and dials a
// new one instead of failing the request.
func TestClientSkipsStaleConnection(t *testing.T) {
	closed := make(chan struct{}, 4)
	s, _ := startServer(t, testMux(), func(s *icap.Server) {
		s.IdleTimeout = 10 * time.Millisecond
		s.ConnState = func(c net.Conn, st icap.ConnState) {
			if st == icap.StateClosed {
				closed <- struct{}{}
			}
		}
	})
	c := s.Client()
	body := bytes.Repeat([]byte("z"), 100)
	do := func() {
		req := newReq(t, icap.MethodRESPMOD, s.ServiceURL("/full"), nil, httpResponse(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(b, body) {
			t.Fatalf("echo %q %v", b, err)
		}
	}
	do()
	select {
	case <-closed: // the server closed the idle connection
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection not closed by the server")
	}
	// Move the client's clock past its stale-check threshold.
	icap.SetClientClock(c, func() time.Time { return time.Now().Add(time.Minute) })
	do()
	if s.Accepted() != 2 {
		t.Fatalf("%d connections, want 2", s.Accepted())
	}
}
