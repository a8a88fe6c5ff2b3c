// Package icaptest provides utilities for ICAP testing, in the manner of
// net/http/httptest: a ResponseRecorder for calling handlers directly, and
// a Server listening on a loopback port.
package icaptest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgeadapt/edgeadapt/icap"
)

// ResponseRecorder is an icap.ResponseWriter that records what a handler
// wrote.
type ResponseRecorder struct {
	// Code is the status passed to WriteHeader (200 if only Write was
	// called, 0 if nothing was written).
	Code int
	// HeaderMap holds the ICAP header fields the handler set.
	HeaderMap http.Header
	// Msg is the encapsulated message passed to WriteHeader.
	Msg any
	// HasBody is the hasBody argument of WriteHeader.
	HasBody bool
	// Body accumulates what was written.
	Body *bytes.Buffer
	// Chunks counts Write calls with data (one chunk each on the wire).
	Chunks int
	// Trailers is what the handler set in Trailer().
	Trailers http.Header
	// ICAPTrailers is what the handler set in ICAPTrailer() (the
	// icap.ICAPTrailerWriter interface).
	ICAPTrailers http.Header
	// OriginalOffset is the UseOriginalBody argument, -1 if not called.
	OriginalOffset int64
	// WroteHeader reports whether WriteHeader was called.
	WroteHeader bool
}

// NewRecorder returns an initialised ResponseRecorder.
func NewRecorder() *ResponseRecorder {
	return &ResponseRecorder{HeaderMap: make(http.Header), Body: new(bytes.Buffer), OriginalOffset: -1}
}

// Header implements icap.ResponseWriter.
func (rw *ResponseRecorder) Header() http.Header { return rw.HeaderMap }

// WriteHeader implements icap.ResponseWriter; it records only the first
// call.
func (rw *ResponseRecorder) WriteHeader(code int, msg any, hasBody bool) {
	if rw.WroteHeader {
		return
	}
	rw.WroteHeader, rw.Code, rw.Msg, rw.HasBody = true, code, msg, hasBody
}

// Write implements icap.ResponseWriter.
func (rw *ResponseRecorder) Write(p []byte) (int, error) {
	if !rw.WroteHeader {
		rw.WriteHeader(icap.StatusOK, nil, true)
	}
	if !rw.HasBody {
		return 0, icap.ErrBodyNotAllowed
	}
	if len(p) > 0 {
		rw.Chunks++
	}
	return rw.Body.Write(p)
}

// Trailer implements icap.ResponseWriter.
func (rw *ResponseRecorder) Trailer() http.Header {
	if rw.Trailers == nil {
		rw.Trailers = make(http.Header)
	}
	return rw.Trailers
}

// ICAPTrailer implements icap.ICAPTrailerWriter.
func (rw *ResponseRecorder) ICAPTrailer() http.Header {
	if rw.ICAPTrailers == nil {
		rw.ICAPTrailers = make(http.Header)
	}
	return rw.ICAPTrailers
}

// UseOriginalBody implements icap.ResponseWriter.
func (rw *ResponseRecorder) UseOriginalBody(offset int64) { rw.OriginalOffset = offset }

var (
	_ icap.ResponseWriter    = (*ResponseRecorder)(nil)
	_ icap.ICAPTrailerWriter = (*ResponseRecorder)(nil)
)

// NewRequest returns a request as a server would pass it to a handler:
// method and target (e.g. "icap://127.0.0.1/echo"), the encapsulated
// messages, and body as the encapsulated body (nil for null-body). It
// panics on a bad target, like httptest.NewRequest.
func NewRequest(method, target string, req *http.Request, resp *http.Response, body io.Reader) *icap.Request {
	r, err := icap.NewRequest(method, target, req, resp)
	if err != nil {
		panic(err)
	}
	r.RemoteAddr = "192.0.2.1:1234"
	r.Body = http.NoBody
	if body != nil {
		r.Body = io.NopCloser(body)
		switch {
		case method == icap.MethodREQMOD && req != nil:
			req.Body = r.Body
		case method == icap.MethodRESPMOD && resp != nil:
			resp.Body = r.Body
		}
	}
	return r
}

// Server is an ICAP server on a loopback port, for tests.
type Server struct {
	// URL is "icap://127.0.0.1:port" (icaps:// after StartTLS), without
	// a service path.
	URL      string
	Listener net.Listener
	// Config may be changed after NewUnstartedServer and before Start.
	Config *icap.Server

	accepted atomic.Int64
	wg       sync.WaitGroup
	client   *icap.Client
}

// NewServer starts and returns a server serving h on 127.0.0.1:0.
func NewServer(h icap.Handler) *Server {
	s := NewUnstartedServer(h)
	s.Start()
	return s
}

// NewUnstartedServer returns a server that is listening but not serving.
func NewUnstartedServer(h icap.Handler) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("icaptest: listen: " + err.Error())
	}
	return &Server{Listener: ln, Config: &icap.Server{Handler: h}}
}

func (s *Server) hookConnState() {
	prev := s.Config.ConnState
	s.Config.ConnState = func(c net.Conn, st icap.ConnState) {
		if st == icap.StateNew {
			s.accepted.Add(1)
		}
		if prev != nil {
			prev(c, st)
		}
	}
}

// Start starts serving.
func (s *Server) Start() {
	s.hookConnState()
	s.URL = "icap://" + s.Listener.Addr().String()
	s.client = &icap.Client{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.Config.Serve(s.Listener)
	}()
}

// StartTLS starts serving ICAPS with a self-signed certificate for
// 127.0.0.1; Client trusts it.
func (s *Server) StartTLS() {
	s.hookConnState()
	cert, pool := SelfSignedCert()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.TLSConfig = cfg
	s.URL = "icaps://" + s.Listener.Addr().String()
	s.client = &icap.Client{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	ln := tls.NewListener(s.Listener, cfg)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.Config.Serve(ln)
	}()
}

// Client returns a client for the server (trusting its certificate after
// StartTLS).
func (s *Server) Client() *icap.Client { return s.client }

// Accepted returns the number of connections accepted so far.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

// ServiceURL returns URL + path.
func (s *Server) ServiceURL(path string) string {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return s.URL + path
}

// Close closes the server and its connections and waits for Serve to
// return.
func (s *Server) Close() {
	s.Config.Close()
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	s.wg.Wait()
}
