package icap_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

// testMux registers the services the wire tests use.
func testMux() *icap.ServeMux {
	mux := icap.NewServeMux()
	all := icap.ServiceOptions{Allow204: true, Allow206: true, AllowTrailers: true}
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) { icap.NoModification(w, r) }, all)
	mux.HandleFunc("/full", func(w icap.ResponseWriter, r *icap.Request) { icap.Echo(w, r) }, all)
	mux.HandleFunc("/read204", func(w icap.ResponseWriter, r *icap.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(icap.StatusNoContent, nil, false)
	}, all)
	mux.HandleFunc("/block", func(w icap.ResponseWriter, r *icap.Request) {
		// An early response: a replacement body without reading the original.
		r.Body.Close()
		resp := &http.Response{StatusCode: 403, Proto: "HTTP/1.1", Header: http.Header{"Content-Type": {"text/plain"}}}
		w.WriteHeader(icap.StatusOK, resp, true)
		io.WriteString(w, "blocked")
	}, all)
	mux.HandleFunc("/panic", func(w icap.ResponseWriter, r *icap.Request) { panic("boom") }, all)
	mux.HandleFunc("/failopen", func(w icap.ResponseWriter, r *icap.Request) {}, all)
	mux.HandleFunc("/reqonly", func(w icap.ResponseWriter, r *icap.Request) { icap.NoModification(w, r) },
		icap.ServiceOptions{Methods: []string{icap.MethodREQMOD}})
	mux.HandleFunc("/headers206", func(w icap.ResponseWriter, r *icap.Request) {
		r.Response.Header.Set("X-Adapted", "1")
		w.WriteHeader(icap.StatusPartialContent, r.Response, true)
		w.UseOriginalBody(0)
	}, all)
	return mux
}

// txLog records Observer calls. The Observer runs after the response has
// been flushed, so readers wait for the count they expect.
type txLog struct {
	mu      sync.Mutex
	txs     []icap.TransactionInfo
	changed chan struct{}
}

func (l *txLog) observe(ti *icap.TransactionInfo) {
	l.mu.Lock()
	l.txs = append(l.txs, *ti)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	l.mu.Unlock()
}

// waitFor returns the transactions once there are at least n, or after
// 10 seconds.
func (l *txLog) waitFor(n int) []icap.TransactionInfo {
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		if len(l.txs) >= n {
			defer l.mu.Unlock()
			return append([]icap.TransactionInfo(nil), l.txs...)
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			return append([]icap.TransactionInfo(nil), l.txs...)
		}
	}
}

func startServer(t testing.TB, h icap.Handler, cfg func(*icap.Server)) (*icaptest.Server, *txLog) {
	t.Helper()
	s := icaptest.NewUnstartedServer(h)
	log := &txLog{}
	s.Config.Observer = log.observe
	s.Config.Logger = discardLogger()
	if cfg != nil {
		cfg(s.Config)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, log
}

// TestErrorCodes sends one request per error the server answers itself
// and checks the status, the ISTag, the connection closing where the
// framing is lost, and the Observer record.
func TestErrorCodes(t *testing.T) {
	s, log := startServer(t, testMux(), nil)
	body := chunks("", "hello")
	for _, tc := range []struct {
		name      string
		req       string
		status    int
		keepAlive bool
	}{
		{"400 malformed request line", "RESPMOD icap://x\r\n\r\n", 400, false},
		{"400 bad header", crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nBad Header\n\n"), 400, false},
		{"400 offsets too short", crlf("RESPMOD icap://127.0.0.1/echo ICAP/1.0\nEncapsulated: res-hdr=0, res-body=5\n\nHTTP/1.1 200 OK\n\n0\n\n"), 400, false},
		{"400 offsets too long", crlf("RESPMOD icap://127.0.0.1/echo ICAP/1.0\nEncapsulated: res-hdr=0, res-body=500\n\nHTTP/1.1 200 OK\n\n0\n\n"), 400, false},
		{"400 missing Encapsulated", crlf("RESPMOD icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"), 400, false},
		{"404 unknown service", respmod("/nope", "", "hello", body), 404, false},
		{"405 method not offered", respmod("/reqonly", "", "hello", body), 405, false},
		{"500 handler panic", respmod("/panic", "", "hello", body), 500, false},
		{"501 unknown method", crlf("LEARN icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"), 501, false},
		{"505 version", crlf("OPTIONS icap://127.0.0.1/echo ICAP/2.0\nHost: x\n\n"), 505, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, s.URL)
			rc.send(tc.req)
			r := rc.read()
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d", r.Status, tc.status)
			}
			if tag := r.Header.Get("ISTag"); !strings.HasPrefix(tag, `"`) || len(tag) > 32 {
				t.Errorf("ISTag %q", tag)
			}
			if tc.keepAlive {
				// The connection is still usable.
				rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
				if r := rc.read(); r.Status != 200 {
					t.Errorf("next request: status %d", r.Status)
				}
			} else {
				if !strings.EqualFold(r.Header.Get("Connection"), "close") {
					t.Errorf("no Connection: close on %d", r.Status)
				}
				rc.expectEOF()
			}
		})
	}
	seen := map[int]bool{}
	for _, tx := range log.waitFor(10) {
		seen[tx.Status] = true
	}
	for _, st := range []int{400, 404, 405, 500, 501, 505} {
		if !seen[st] {
			t.Errorf("Observer saw no transaction with status %d", st)
		}
	}
}

func TestTimeout408(t *testing.T) {
	s, log := startServer(t, testMux(), func(s *icap.Server) { s.ReadHeaderTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, s.URL)
	rc.send("OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n") // never finished
	r := rc.read()
	if r.Status != 408 {
		t.Fatalf("status %d, want 408", r.Status)
	}
	rc.expectEOF()
	if txs := log.waitFor(1); len(txs) != 1 || txs[0].Status != 408 || txs[0].Err == nil {
		t.Fatalf("observer: %+v", txs)
	}
}

func TestMaxConns503(t *testing.T) {
	s, log := startServer(t, testMux(), func(s *icap.Server) { s.MaxConns = 1 })
	c1 := dialRaw(t, s.URL)
	c1.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	if r := c1.read(); r.Status != 200 {
		t.Fatalf("first connection: %d", r.Status)
	}
	c2 := dialRaw(t, s.URL)
	c2.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	r := c2.read()
	if r.Status != 503 || r.Header.Get("ISTag") == "" {
		t.Fatalf("second connection: %d %v, want 503 with ISTag", r.Status, r.Header)
	}
	c2.expectEOF()
	// The first connection still works.
	c1.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	if r := c1.read(); r.Status != 200 {
		t.Fatalf("first connection after 503: %d", r.Status)
	}
	n503 := 0
	for _, tx := range log.waitFor(3) {
		if tx.Status == 503 {
			n503++
		}
	}
	if n503 != 1 {
		t.Errorf("observer saw %d 503s, want 1", n503)
	}
}

func TestPreviewIEOFNoContinue(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	// /full must read the whole body: it fits in the preview (ieof), so
	// no 100 Continue may be sent.
	rc.send(respmod("/full", "Preview: 10\n", "hello", chunks("ieof", "hello")))
	r := rc.read()
	if r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("got %d %q, want 200 hello", r.Status, r.Body)
	}
}

func TestPreviewContinue(t *testing.T) {
	s, log := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/full", "Preview: 4\n", "hello world", chunks("", "hell")))
	r := rc.read()
	if r.Status != 100 {
		t.Fatalf("status %d, want 100 Continue", r.Status)
	}
	rc.send(chunks("", "o wor", "ld"))
	r = rc.read()
	if r.Status != 200 || string(r.Body) != "hello world" {
		t.Fatalf("got %d %q", r.Status, r.Body)
	}
	if txs := log.waitFor(1); len(txs) != 1 || !txs[0].Continued || txs[0].Preview != 4 {
		t.Fatalf("observer: %+v", txs)
	}
	// The connection carries another transaction.
	rc.send(respmod("/echo", "Preview: 4\n", "hello", chunks("", "hell")))
	if r := rc.read(); r.Status != 204 {
		t.Fatalf("second: %d, want 204", r.Status)
	}
}

func TestPreviewZero(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/full", "Preview: 0\n", "abc", chunks("")))
	if r := rc.read(); r.Status != 100 {
		t.Fatalf("status %d, want 100", r.Status)
	}
	rc.send(chunks("", "abc"))
	if r := rc.read(); r.Status != 200 || string(r.Body) != "abc" {
		t.Fatalf("got %d %q", r.Status, r.Body)
	}
}

// Test204Rules: 204 inside a preview is always allowed; outside it only
// with Allow: 204; otherwise the unchanged message comes back.
func Test204Rules(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	for _, tc := range []struct {
		name   string
		path   string
		extra  string
		body   string
		status int
	}{
		{"preview without Allow", "/echo", "Preview: 4\n", chunks("", "hell"), 204},
		{"preview ieof without Allow", "/echo", "Preview: 10\n", chunks("ieof", "hello"), 204},
		{"Allow 204 no preview", "/echo", "Allow: 204\n", chunks("", "hello"), 204},
		{"neither: echo", "/echo", "", chunks("", "hello"), 200},
		{"after consuming the body without Allow: 500, never a truncated echo", "/read204", "Preview: 2\n", chunks("", "he"), -500},
		{"after reading past preview with Allow", "/read204", "Preview: 2\nAllow: 204\n", chunks("", "he"), 204},
		{"after reading a whole ieof preview", "/read204", "Preview: 10\n", chunks("ieof", "hello"), 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, s.URL)
			rc.send(respmod(tc.path, tc.extra, "hello", tc.body))
			r := rc.read()
			if r.Status == 100 {
				rc.send(chunks("", "llo"))
				r = rc.read()
			}
			if tc.status < 0 { // an error: the connection closes after it
				if r.Status != -tc.status {
					t.Fatalf("status %d, want %d", r.Status, -tc.status)
				}
				rc.expectEOF()
				return
			}
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d", r.Status, tc.status)
			}
			if r.Status == 200 && string(r.Body) != "hello" {
				t.Fatalf("echo body %q", r.Body)
			}
			if r.Status == 204 && r.Encap != "" {
				t.Fatalf("204 with encapsulated data %q", r.Encap)
			}
			// Still in sync.
			rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
			if r := rc.read(); r.Status != 200 {
				t.Fatalf("next: %d", r.Status)
			}
		})
	}
}

func Test206(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/headers206", "Allow: 206\n", "hello", chunks("", "hello")))
	r := rc.read()
	if r.Status != 206 {
		t.Fatalf("status %d, want 206", r.Status)
	}
	if r.LastExt != "use-original-body=0" || len(r.Body) != 0 {
		t.Fatalf("last chunk ext %q body %q", r.LastExt, r.Body)
	}
	if !strings.Contains(r.Encap, "X-Adapted: 1\r\n") || !strings.HasPrefix(r.Header.Get("Encapsulated"), "res-hdr=0, res-body=") {
		t.Fatalf("encapsulated %q / %q", r.Header.Get("Encapsulated"), r.Encap)
	}
	// Without Allow: 206 the same handler's answer becomes a full echo.
	rc.send(respmod("/headers206", "", "hello", chunks("", "hello")))
	if r := rc.read(); r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("without Allow 206: %d %q", r.Status, r.Body)
	}
	// Through the client: UseOriginalBody is reported.
	req := newReq(t, icap.MethodRESPMOD, s.ServiceURL("/echo"), nil, httpResponse([]byte("hello")))
	req.Allow206 = true
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 206 || resp.UseOriginalBody != 0 {
		t.Fatalf("client: %d use-original-body=%d", resp.StatusCode, resp.UseOriginalBody)
	}
}

func TestTrailers(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	withTrailer := "5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"
	rc.send(respmod("/full", "Allow: trailers\n", "hello", withTrailer))
	r := rc.read()
	if r.Status != 200 || string(r.Body) != "hello" || r.Trailer != "X-Sum: 42\n" {
		t.Fatalf("got %d %q trailer %q", r.Status, r.Body, r.Trailer)
	}
	rc.send(respmod("/full", "", "hello", withTrailer))
	r = rc.read()
	if r.Status != 200 || r.Trailer != "" {
		t.Fatalf("trailers sent without Allow: trailers: %q", r.Trailer)
	}
}

func TestChunkExtensionsAccepted(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/full", "", "hello world", "5;a=b;c=\"d;e\"\r\nhello\r\n6 ;x\r\n world\r\n0; foo=bar\r\n\r\n"))
	if r := rc.read(); r.Status != 200 || string(r.Body) != "hello world" {
		t.Fatalf("got %d %q", r.Status, r.Body)
	}
}

func TestPipelined(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	// Three requests in one write.
	rc.send(respmod("/full", "", "one", chunks("", "one")) +
		crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n") +
		respmod("/full", "", "three", chunks("", "thr", "ee")))
	if r := rc.read(); r.Status != 200 || string(r.Body) != "one" {
		t.Fatalf("first: %d %q", r.Status, r.Body)
	}
	if r := rc.read(); r.Status != 200 || r.Header.Get("Methods") == "" {
		t.Fatalf("second: %d %v", r.Status, r.Header)
	}
	if r := rc.read(); r.Status != 200 || string(r.Body) != "three" {
		t.Fatalf("third: %d %q", r.Status, r.Body)
	}
	if s.Accepted() != 1 {
		t.Fatalf("accepted %d", s.Accepted())
	}
}

// TestEarlyResponse: the handler answers before reading the body; the
// server drains the rest and the connection stays usable, or closes when
// the rest is over MaxDrainBytes. Nothing deadlocks.
func TestEarlyResponse(t *testing.T) {
	s, _ := startServer(t, testMux(), func(s *icap.Server) { s.MaxDrainBytes = 1 << 20 })
	big := strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name  string
		parts int
		keep  bool
	}{
		{"small rest drained", 4, true},
		{"rest over MaxDrainBytes closes", 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, s.URL)
			parts := make([]string, tc.parts)
			for i := range parts {
				parts[i] = big
			}
			// Write the body concurrently, as an RFC-conforming client
			// monitors the connection for early responses.
			done := make(chan error, 1)
			req := respmod("/block", "", strings.Repeat(big, tc.parts), chunks("", parts...))
			go func() {
				rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err := io.WriteString(rc.c, req)
				done <- err
			}()
			r := rc.read()
			if r.Status != 200 || string(r.Body) != "blocked" || !strings.HasPrefix(r.Encap, "HTTP/1.1 403 Forbidden\r\n") {
				t.Fatalf("got %d %q %q", r.Status, r.Body, r.Encap)
			}
			werr := <-done
			if tc.keep {
				if werr != nil {
					t.Fatal(werr)
				}
				rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
				if r := rc.read(); r.Status != 200 {
					t.Fatalf("next: %d", r.Status)
				}
			} else {
				rc.expectEOF()
			}
		})
	}
}

func TestConnectionClose(t *testing.T) {
	mux := testMux()
	mux.HandleFunc("/closing", func(w icap.ResponseWriter, r *icap.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(icap.StatusNoContent, nil, false)
	}, icap.ServiceOptions{})
	s, _ := startServer(t, mux, nil)
	t.Run("client sends close", func(t *testing.T) {
		rc := dialRaw(t, s.URL)
		rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\nConnection: close\n\n"))
		r := rc.read()
		if r.Status != 200 || r.Header.Get("Connection") != "close" {
			t.Fatalf("got %d %v", r.Status, r.Header)
		}
		rc.expectEOF()
	})
	t.Run("handler sends close", func(t *testing.T) {
		rc := dialRaw(t, s.URL)
		rc.send(respmod("/closing", "Allow: 204\n", "hi", chunks("", "hi")))
		r := rc.read()
		if r.Status != 204 || r.Header.Get("Connection") != "close" {
			t.Fatalf("got %d %v", r.Status, r.Header)
		}
		rc.expectEOF()
	})
	t.Run("client honours server close", func(t *testing.T) {
		c := s.Client()
		before := s.Accepted()
		for range 2 {
			req := newReq(t, icap.MethodRESPMOD, s.ServiceURL("/closing"), nil, httpResponse([]byte("hi")))
			req.Allow204 = true
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 204 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		if got := s.Accepted() - before; got != 2 {
			t.Fatalf("%d connections for 2 requests answered with Connection: close, want 2", got)
		}
	})
	t.Run("client sends close", func(t *testing.T) {
		req := newReq(t, icap.MethodOPTIONS, s.ServiceURL("/echo"), nil, nil)
		req.Close = true
		before := s.Accepted()
		for range 2 {
			if _, err := s.Client().Do(req); err != nil {
				t.Fatal(err)
			}
		}
		if got := s.Accepted() - before; got != 2 {
			t.Fatalf("%d connections, want 2", got)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	s, _ := startServer(t, testMux(), func(s *icap.Server) { s.IdleTimeout = 50 * time.Millisecond })
	rc := dialRaw(t, s.URL)
	rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	if r := rc.read(); r.Status != 200 {
		t.Fatal(r.Status)
	}
	start := time.Now()
	rc.expectEOF() // waits up to 10s
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
}

func TestHopByHopStripped(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	res := crlf("HTTP/1.1 200 OK\nContent-Type: text/plain\nConnection: keep-alive, X-Secret\nKeep-Alive: 300\nX-Secret: s\nTransfer-Encoding: chunked\nUpgrade: h2c\nX-Kept: k\n\n")
	rc.send(crlf("RESPMOD icap://127.0.0.1/full ICAP/1.0\nHost: x\nEncapsulated: res-hdr=0, res-body=") +
		itoa(len(res)) + "\r\n\r\n" + res + chunks("", "hi"))
	r := rc.read()
	if r.Status != 200 {
		t.Fatal(r.Status)
	}
	for _, h := range []string{"Connection:", "Keep-Alive:", "X-Secret:", "Transfer-Encoding:", "Upgrade:"} {
		if strings.Contains(r.Encap, h) {
			t.Errorf("hop-by-hop %s echoed: %q", h, r.Encap)
		}
	}
	if !strings.Contains(r.Encap, "X-Kept: k\r\n") {
		t.Errorf("end-to-end header lost: %q", r.Encap)
	}
}

func TestFailOpenAndPanic(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/failopen", "", "hello", chunks("", "hello")))
	if r := rc.read(); r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("fail open without Allow 204: %d %q", r.Status, r.Body)
	}
	rc.send(respmod("/failopen", "Allow: 204\n", "hello", chunks("", "hello")))
	if r := rc.read(); r.Status != 204 {
		t.Fatalf("fail open with Allow 204: %d", r.Status)
	}
}

// slowServer serves testMux plus /slow, whose handler signals entered and
// waits for release before echoing.
func slowServer(t *testing.T) (s *icaptest.Server, entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	mux := testMux()
	mux.HandleFunc("/slow", func(w icap.ResponseWriter, r *icap.Request) {
		close(entered)
		<-release
		icap.Echo(w, r)
	}, icap.ServiceOptions{})
	s, _ = startServer(t, mux, nil)
	return s, entered, release
}

// waitListenerClosed dials until the server refuses connections.
func waitListenerClosed(t *testing.T, s *icaptest.Server) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "icap://"))
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting")
		}
	}
}

// TestShutdownDrains: Shutdown closes the listener and idle connections,
// lets an in-flight transaction finish with Connection: close, and
// returns once it is done.
func TestShutdownDrains(t *testing.T) {
	s, entered, release := slowServer(t)
	idle := dialRaw(t, s.URL)
	idle.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	idle.read()

	busy := dialRaw(t, s.URL)
	busy.send(respmod("/slow", "", "data", chunks("", "data")))
	<-entered

	done := make(chan error, 1)
	go func() { done <- s.Config.Shutdown(context.Background()) }()
	idle.expectEOF()
	waitListenerClosed(t, s) // new connections are refused
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a transaction in flight", err)
	default:
	}
	close(release)
	r := busy.read()
	if r.Status != 200 || string(r.Body) != "data" {
		t.Fatalf("in-flight: %d %q %v", r.Status, r.Body, r.Header)
	}
	busy.expectEOF()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	s := icaptest.NewUnstartedServer(testMux())
	s.Config.Logger = discardLogger()
	s.StartTLS()
	t.Cleanup(s.Close)
	if !strings.HasPrefix(s.URL, "icaps://") {
		t.Fatalf("URL %q", s.URL)
	}
	c := s.Client()
	resp, err := c.Options(context.Background(), s.ServiceURL("/echo"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("OPTIONS over TLS: %v %v", resp, err)
	}
	body := strings.Repeat("tls ", 10000)
	req := newReq(t, icap.MethodRESPMOD, s.ServiceURL("/full"), nil, httpResponse([]byte(body)))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != body {
		t.Fatalf("echo over TLS: %d bytes, %v", len(got), err)
	}
	if s.Accepted() != 1 {
		t.Fatalf("accepted %d TLS connections, want 1", s.Accepted())
	}
}

func TestOptionsFromRegistration(t *testing.T) {
	mux := icap.NewServeMux()
	opts := icap.ServiceOptions{
		Methods: []string{icap.MethodRESPMOD}, Service: "Echo service", ServiceID: "echo",
		MaxConnections: 100, OptionsTTL: 30 * time.Second, Allow204: true, Allow206: true, AllowTrailers: true,
		Preview: 2048, TransferPreview: []string{"*"}, TransferIgnore: []string{"jpg", "png"}, TransferComplete: []string{"exe"},
		XInclude: []string{"X-Client-IP", "X-Authenticated-User"},
	}
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) { icap.NoModification(w, r) }, opts)
	s, _ := startServer(t, mux, nil)
	rc := dialRaw(t, s.URL)
	rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	r := rc.read()
	want := map[string]string{
		"Methods": "RESPMOD", "Service": "Echo service", "Service-Id": "echo", "Serviceid": "echo",
		"Max-Connections": "100", "Options-Ttl": "30", "Allow": "204, 206, trailers", "Preview": "2048",
		"Transfer-Preview": "*", "Transfer-Ignore": "jpg, png", "Transfer-Complete": "exe",
		"X-Include": "X-Client-IP, X-Authenticated-User", "Encapsulated": "null-body=0",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if r.Header.Get("Date") == "" {
		t.Error("no Date")
	}
	tag := r.Header.Get("Istag")
	if len(tag) > 32 || !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) {
		t.Fatalf("ISTag %q", tag)
	}
	// Re-registering with a changed configuration changes the ISTag; the
	// same configuration keeps it.
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {}, opts)
	if mux.ISTag("/echo") != tag {
		t.Fatalf("same options, ISTag changed: %q -> %q", tag, mux.ISTag("/echo"))
	}
	opts.Version = "policy-v2"
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {}, opts)
	if mux.ISTag("/echo") == tag {
		t.Fatal("ISTag unchanged after a configuration change")
	}
	if err := mux.SetISTag("/echo", "manual-1"); err != nil {
		t.Fatal(err)
	}
	rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	if r := rc.read(); r.Header.Get("ISTag") != `"manual-1"` {
		t.Fatalf("after SetISTag: %q", r.Header.Get("ISTag"))
	}
	// The serialised OPTIONS answer is rebuilt, never appended to the
	// previous one's: each field once, fields sorted.
	if err := mux.SetISTag("/echo", "manual-2"); err != nil {
		t.Fatal(err)
	}
	rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	r = rc.read()
	if got := r.Header["Istag"]; len(got) != 1 || got[0] != `"manual-2"` {
		t.Fatalf("after a second SetISTag: ISTag %q", got)
	}
	if len(r.Header["Date"]) != 1 || len(r.Header["Methods"]) != 1 {
		t.Fatalf("fields repeated: %v", r.Header)
	}
	if err := mux.SetISTag("/nope", "x"); err == nil {
		t.Fatal("SetISTag on unknown service succeeded")
	}
}

func TestObserver(t *testing.T) {
	s, log := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	req := respmod("/echo", "X-Client-IP: 192.0.2.9\nAllow: 204\n", "hello", chunks("", "hello"))
	rc.send(req)
	if r := rc.read(); r.Status != 204 {
		t.Fatal(r.Status)
	}
	txs := log.waitFor(1)
	if len(txs) != 1 {
		t.Fatalf("%d transactions", len(txs))
	}
	tx := txs[0]
	if tx.Method != "RESPMOD" || tx.Service != "/echo" || tx.Status != 204 || tx.ClientIP != "192.0.2.9" ||
		tx.BytesIn != int64(len(req)) || tx.BytesOut == 0 || tx.Duration <= 0 {
		t.Fatalf("%+v (request was %d bytes)", tx, len(req))
	}
	// A client closing between requests is not a transaction.
	rc.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Config.Shutdown(ctx); err != nil { // returns once the connection is gone
		t.Fatal(err)
	}
	if txs := log.waitFor(1); len(txs) != 1 {
		t.Fatalf("%d transactions after an idle close: %+v", len(txs), txs)
	}
}

func TestReqmodReturnsResponse(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	req := newReq(t, icap.MethodREQMOD, s.ServiceURL("/block"), httpRequest("POST", "http://example.com/", []byte("payload")), nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Response == nil || resp.Response.StatusCode != 403 || string(b) != "blocked" {
		t.Fatalf("got %d %+v %q", resp.StatusCode, resp.Response, b)
	}
	// REQMOD echo returns the request, with its body.
	req = newReq(t, icap.MethodREQMOD, s.ServiceURL("/full"), httpRequest("POST", "http://example.com/p?q=1", []byte("payload")), nil)
	resp, err = s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	if resp.Request == nil || resp.Request.URL.String() != "http://example.com/p?q=1" || string(b) != "payload" {
		t.Fatalf("REQMOD echo: %+v %q", resp.Request, b)
	}
}

func TestServerClosedErrors(t *testing.T) {
	var srv icap.Server
	srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ln); !errors.Is(err, icap.ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

func TestViaOnModifiedMessages(t *testing.T) {
	mux := icap.NewServeMux()
	opts := icap.ServiceOptions{Via: "icap.test (edgeadapt)"}
	mux.HandleFunc("/modify", func(w icap.ResponseWriter, r *icap.Request) {
		r.Response.Header.Set("X-Modified", "yes")
		w.WriteHeader(icap.StatusOK, r.Response, true)
		io.Copy(w, r.Body)
	}, opts)
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) { icap.Echo(w, r) }, opts)
	s, _ := startServer(t, mux, nil)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/modify", "", "hi", chunks("", "hi")))
	r := rc.read()
	if !strings.Contains(r.Encap, "\r\nVia: 1.0 icap.test (edgeadapt)\r\n\r\n") || !strings.Contains(r.Encap, "X-Modified: yes") {
		t.Fatalf("modified message: %q", r.Encap)
	}
	rc.send(respmod("/echo", "", "hi", chunks("", "hi")))
	if r := rc.read(); strings.Contains(r.Encap, "Via:") {
		t.Fatalf("Via on an unchanged echo: %q", r.Encap)
	}
}

// TestBrokenBodyNotTerminated: when the request body stops arriving
// (ReadTimeout) in the middle of an echo, the response is cut off without
// its last chunk, so the client cannot mistake it for a complete message.
func TestBrokenBodyNotTerminated(t *testing.T) {
	s, log := startServer(t, testMux(), func(s *icap.Server) { s.ReadTimeout = 100 * time.Millisecond })
	rc := dialRaw(t, s.URL)
	full := respmod("/full", "", "hello world", chunks("", "hello", " world"))
	rc.send(full[:strings.Index(full, " world")]) // stall after the first chunk
	r, err := rc.tryRead()
	if err == nil {
		t.Fatalf("complete response %d %q from a broken body", r.Status, r.Body)
	}
	if r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("got %d %q before the cut", r.Status, r.Body)
	}
	if txs := log.waitFor(1); len(txs) != 1 || txs[0].Err == nil {
		t.Fatalf("observer: %+v", txs)
	}
}

// TestHeaderLimits: an ICAP header over MaxHeaderBytes and an
// encapsulated header over MaxHTTPHeaderBytes are answered 400, and the
// answer reaches the client although it was still sending (lingering
// close, no reset).
func TestHeaderLimits(t *testing.T) {
	s, log := startServer(t, testMux(), func(s *icap.Server) {
		s.MaxHeaderBytes = 1024
		s.MaxHTTPHeaderBytes = 2048
	})
	big := strings.Repeat("a", 3000)
	res := crlf("HTTP/1.1 200 OK\nX-Big: " + big + "\n\n")
	for _, tc := range []struct{ name, req string }{
		{"ICAP header", crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nX-Big: " + big + "\n\n")},
		{"encapsulated header", crlf("RESPMOD icap://127.0.0.1/echo ICAP/1.0\nHost: x\nEncapsulated: res-hdr=0, res-body="+itoa(len(res))+"\n\n") +
			res + chunks("", strings.Repeat("b", 1<<20))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			rc := dialRaw(t, s.URL)
			go func() { // keep sending while the server answers
				rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(rc.c, req)
			}()
			r := rc.read()
			if r.Status != 400 {
				t.Fatalf("status %d, want 400", r.Status)
			}
			rc.expectEOF()
		})
	}
	for _, tx := range log.waitFor(2) {
		if !errors.Is(tx.Err, icap.ErrHeaderTooLarge) {
			t.Errorf("observer error %v, want ErrHeaderTooLarge", tx.Err)
		}
	}
}

// Test206WaitsForPreview: Squid rejects a 206 that arrives while it is
// still sending the preview, so the server reads the whole preview before
// answering 206. The preview is sent in two writes; the answer may only
// come after the second.
func Test206WaitsForPreview(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	full := respmod("/headers206", "Preview: 10\nAllow: 206\n", "0123456789abc", chunks("", "01234", "56789"))
	cut := strings.Index(full, "56789") - 3 // before the second chunk
	rc.send(full[:cut])
	// No answer may come while the preview is incomplete.
	rc.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := rc.br.Peek(1); err == nil {
		t.Fatalf("answer %q before the preview was complete", n)
	}
	rc.send(full[cut:])
	r := rc.read()
	if r.Status != 206 || r.LastExt != "use-original-body=0" {
		t.Fatalf("got %d %q", r.Status, r.LastExt)
	}
	rc.send(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	if r := rc.read(); r.Status != 200 {
		t.Fatalf("next: %d", r.Status)
	}
}
