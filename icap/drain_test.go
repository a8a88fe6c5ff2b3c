package icap_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

// Tests of Shutdown's drain as a client with persistent connections (Squid)
// sees it: every request either gets a whole answer or finds its
// connection closed before any byte of a response (which Squid retries on
// a reused connection, or bypasses); never a 503.

const optionsReq = "OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"

// expectClosedWithoutResponse checks that a request sent on rc gets no
// response byte: the connection is closed (EOF or reset), not answered.
func (rc *rawConn) expectClosedWithoutResponse(req string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(rc.c, req) // may fail: the server may have closed already
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := rc.br.ReadByte()
	if err == nil {
		rest, _ := rc.br.Peek(rc.br.Buffered())
		rc.t.Fatalf("request after the last response was answered: %q", string(b)+string(rest))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		rc.t.Fatal("connection still open 10s after the last response")
	}
}

// waitNoConnGoroutines fails unless every server connection goroutine has
// ended within 10 seconds.
func waitNoConnGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "icap.(*conn).serve") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection goroutines left after Shutdown:\n%s", stacks)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// shutdownAsync starts Shutdown and returns its result channel once the
// listener is closed (Shutdown has begun).
func shutdownAsync(t *testing.T, s *icaptest.Server, ctx context.Context) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Config.Shutdown(ctx) }()
	waitListenerClosed(t, s)
	return done
}

// closeAndWaitShutdown closes the client's side of rc, as Squid does once
// the server closed (ending the server's lingering close), then checks
// that Shutdown returned nil and no connection goroutine is left.
func closeAndWaitShutdown(t *testing.T, rc *rawConn, done <-chan error) {
	t.Helper()
	rc.c.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitNoConnGoroutines(t)
}

// TestShutdownInFlightConnectionClose: a transaction in flight on a reused
// connection when Shutdown begins completes with "Connection: close"; the
// next request on that connection finds it closed, without a 503.
func TestShutdownInFlightConnectionClose(t *testing.T) {
	s, entered, release := slowServer(t)
	rc := dialRaw(t, s.URL)
	rc.send(crlf(optionsReq))
	if r := rc.read(); r.Status != 200 || r.Header.Get("Connection") != "" {
		t.Fatalf("OPTIONS before Shutdown: %d %v", r.Status, r.Header)
	}
	rc.send(respmod("/slow", "", "data", chunks("", "data")))
	<-entered
	done := shutdownAsync(t, s, context.Background())
	close(release)
	r := rc.read()
	if r.Status != 200 || string(r.Body) != "data" || r.Header.Get("Connection") != "close" {
		t.Fatalf("in flight: %d %q %v, want 200 \"data\" with Connection: close", r.Status, r.Body, r.Header)
	}
	rc.expectClosedWithoutResponse(crlf(optionsReq))
	closeAndWaitShutdown(t, rc, done)
}

// TestShutdownPipelined: a request pipelined behind the one in flight is
// never answered 503. If the in-flight response starts after its request
// body ended, the pipelined request (already read) is served next, with
// "Connection: close". A response streamed while its request body is still
// arriving announces the close in its head, as it cannot know what
// follows the body: the pipelined request then gets no response byte, and
// the client knows from the close that it was not served.
func TestShutdownPipelined(t *testing.T) {
	for _, tc := range []struct {
		name            string
		readFirst       bool // the handler reads the whole body before answering
		pipelinedServed bool // the pipelined request is served
	}{
		{"answer after the body", true, true},
		{"streamed answer", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			mux := testMux()
			mux.HandleFunc("/hold", func(w icap.ResponseWriter, r *icap.Request) {
				var body []byte
				if tc.readFirst {
					body, _ = io.ReadAll(r.Body)
				}
				close(entered)
				<-release
				if !tc.readFirst {
					icap.Echo(w, r)
					return
				}
				r.Response.Body = nil
				w.WriteHeader(icap.StatusOK, r.Response, true)
				w.Write(body)
			}, icap.ServiceOptions{})
			s, _ := startServer(t, mux, nil)
			rc := dialRaw(t, s.URL)
			rc.send(respmod("/hold", "", "data", chunks("", "data")) + crlf(optionsReq))
			<-entered
			done := shutdownAsync(t, s, context.Background())
			close(release)
			r := rc.read()
			if r.Status != 200 || string(r.Body) != "data" {
				t.Fatalf("in flight: %d %q", r.Status, r.Body)
			}
			if tc.pipelinedServed {
				if r = rc.read(); r.Status != 200 || r.Header.Get("Connection") != "close" {
					t.Fatalf("pipelined during shutdown: %d %v, want 200 with Connection: close", r.Status, r.Header)
				}
			} else if r.Header.Get("Connection") != "close" {
				t.Fatalf("streamed in-flight response without Connection: close: %v", r.Header)
			}
			rc.expectEOF()
			closeAndWaitShutdown(t, rc, done)
		})
	}
}

// TestShutdownRequestArrivingAsDrainBegins: a reused connection whose next
// request has begun to arrive when Shutdown starts (the connection is
// active, not idle) gets that request served with "Connection: close".
func TestShutdownRequestArrivingAsDrainBegins(t *testing.T) {
	active := make(chan struct{}, 16)
	s, _ := startServer(t, testMux(), func(srv *icap.Server) {
		srv.ConnState = func(_ net.Conn, st icap.ConnState) {
			if st == icap.StateActive {
				active <- struct{}{}
			}
		}
	})
	rc := dialRaw(t, s.URL)
	rc.send(crlf(optionsReq))
	<-active
	if r := rc.read(); r.Status != 200 {
		t.Fatalf("first OPTIONS: %d", r.Status)
	}
	req := crlf(optionsReq)
	rc.send(req[:3])
	<-active // the server is reading the second request
	done := shutdownAsync(t, s, context.Background())
	rc.send(req[3:])
	if r := rc.read(); r.Status != 200 || r.Header.Get("Connection") != "close" {
		t.Fatalf("request read during shutdown: %d %v, want 200 with Connection: close", r.Status, r.Header)
	}
	rc.expectEOF()
	closeAndWaitShutdown(t, rc, done)
}

// TestShutdownClient: icap.Client's pooled connection sees the in-flight
// response's "Connection: close" and does not reuse the connection: the
// next request fails to connect (the listener is closed) rather than
// getting a 503.
func TestShutdownClient(t *testing.T) {
	s, entered, release := slowServer(t)
	c := s.Client()
	if resp, err := c.Options(context.Background(), s.ServiceURL("/echo")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v %v", resp, err)
	}
	type result struct {
		resp *icap.Response
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		req, err := icap.NewRequest(icap.MethodRESPMOD, s.ServiceURL("/slow"), nil, httpResponse([]byte("payload")))
		if err != nil {
			res <- result{err: err}
			return
		}
		resp, err := c.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp, string(b), err}
	}()
	<-entered
	done := shutdownAsync(t, s, context.Background())
	close(release)
	r := <-res
	if r.err != nil || r.resp.StatusCode != 200 || r.body != "payload" || r.resp.Header.Get("Connection") != "close" {
		t.Fatalf("in flight: %v %+v %q", r.err, r.resp, r.body)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	resp, err := c.Options(context.Background(), s.ServiceURL("/echo"))
	if err == nil {
		t.Fatalf("OPTIONS after Shutdown answered %d, want a connection error", resp.StatusCode)
	}
	waitNoConnGoroutines(t)
}

// TestShutdownBoundedByContext: a handler that does not finish holds
// Shutdown only until its context is done; Close then ends the connection.
func TestShutdownBoundedByContext(t *testing.T) {
	s, entered, release := slowServer(t)
	defer close(release)
	rc := dialRaw(t, s.URL)
	rc.send(respmod("/slow", "", "data", chunks("", "data")))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Config.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck handler: %v, want DeadlineExceeded", err)
	}
	if s.Config.NumConns() != 1 {
		t.Fatalf("%d connections after Shutdown timed out, want the stuck one", s.Config.NumConns())
	}
	s.Config.Close()
	rc.expectEOF()
}
