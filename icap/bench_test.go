package icap_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

// Benchmarks run the Client against a Server over loopback in the same
// process (so the figures include both ends). Run with
//
//	go test ./icap -run '^$' -bench . -benchmem -cpu 1,2
//
// Each reports req/s besides ns/op; -cpu N also sets the client
// concurrency (RunParallel uses GOMAXPROCS goroutines).

func benchServer(b *testing.B) *icaptest.Server {
	mux := icap.NewServeMux()
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) { icap.NoModification(w, r) },
		icap.ServiceOptions{Allow204: true})
	mux.HandleFunc("/full", func(w icap.ResponseWriter, r *icap.Request) { icap.Echo(w, r) }, icap.ServiceOptions{})
	s := icaptest.NewUnstartedServer(mux)
	s.Config.Logger = discardLogger()
	s.Start()
	b.Cleanup(s.Close)
	return s
}

func benchDo(b *testing.B, s *icaptest.Server, mk func() *icap.Request, wantStatus int, wantBody int) {
	c := s.Client()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Do(mk())
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || resp.StatusCode != wantStatus || int(n) != wantBody {
				b.Errorf("status %d body %d err %v", resp.StatusCode, n, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

var benchHTTPReq = &http.Request{Method: "GET", Proto: "HTTP/1.1", RequestURI: "http://example.com/index.html",
	Host: "example.com", Header: http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}}}

func respmodReq(b *testing.B, url string, body []byte, preview int, allow204 bool) func() *icap.Request {
	return func() *icap.Request {
		resp := &http.Response{Proto: "HTTP/1.1", StatusCode: 200, Status: "200 OK",
			Header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {itoa(len(body))}},
			Body:   io.NopCloser(bytes.NewReader(body))}
		r, err := icap.NewRequest(icap.MethodRESPMOD, url, benchHTTPReq, resp)
		if err != nil {
			b.Fatal(err)
		}
		r.Body = readerCloser{bytes.NewReader(body)}
		r.Preview = preview
		r.Allow204 = allow204
		return r
	}
}

// readerCloser keeps bytes.Reader's Len and WriteTo visible to the client.
type readerCloser struct{ *bytes.Reader }

func (readerCloser) Close() error { return nil }

func BenchmarkOPTIONS(b *testing.B) {
	s := benchServer(b)
	url := s.ServiceURL("/echo")
	benchDo(b, s, func() *icap.Request {
		r, _ := icap.NewRequest(icap.MethodOPTIONS, url, nil, nil)
		return r.WithContext(context.Background())
	}, 200, 0)
}

func BenchmarkRESPMOD204Preview(b *testing.B) {
	s := benchServer(b)
	benchDo(b, s, respmodReq(b, s.ServiceURL("/echo"), make([]byte, 10<<10), 1024, true), 204, 0)
}

func BenchmarkREQMOD204Preview(b *testing.B) {
	s := benchServer(b)
	url := s.ServiceURL("/echo")
	body := make([]byte, 10<<10)
	benchDo(b, s, func() *icap.Request {
		q := &http.Request{Method: "POST", Proto: "HTTP/1.1", RequestURI: "http://example.com/upload",
			Host: "example.com", Header: http.Header{"Content-Type": {"application/octet-stream"}}}
		r, _ := icap.NewRequest(icap.MethodREQMOD, url, q, nil)
		r.Body = readerCloser{bytes.NewReader(body)}
		r.Preview = 1024
		r.Allow204 = true
		return r
	}, 204, 0)
}

func BenchmarkRESPMODEcho10KB(b *testing.B) {
	s := benchServer(b)
	b.SetBytes(10 << 10)
	benchDo(b, s, respmodReq(b, s.ServiceURL("/full"), make([]byte, 10<<10), -1, false), 200, 10<<10)
}

func BenchmarkRESPMODEcho1MB(b *testing.B) {
	s := benchServer(b)
	b.SetBytes(1 << 20)
	benchDo(b, s, respmodReq(b, s.ServiceURL("/full"), make([]byte, 1<<20), -1, false), 200, 1<<20)
}

// BenchmarkReadRequest parses the request head icapbench sends for a
// 10 KB RESPMOD (ICAP header, encapsulated request and response headers)
// and drains its body, reusing the parser state as a server connection
// does: the server's parsing cost alone, no I/O.
func BenchmarkReadRequest(b *testing.B) {
	req := "GET http://bench.test/file HTTP/1.1\r\nHost: bench.test\r\n\r\n"
	res := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 10240\r\n\r\n"
	body := bytes.Repeat([]byte("x"), 10240)
	wire := []byte("RESPMOD icap://127.0.0.1:1344/echo ICAP/1.0\r\nHost: 127.0.0.1:1344\r\nEncapsulated: req-hdr=0, res-hdr=" +
		itoa(len(req)) + ", res-body=" + itoa(len(req)+len(res)) + "\r\n\r\n" + req + res + "2800\r\n")
	wire = append(append(wire, body...), "\r\n0\r\n\r\n"...)
	rd := bytes.NewReader(wire)
	br := bufio.NewReaderSize(rd, 32<<10)
	var p icap.Parser
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		rd.Reset(wire)
		br.Reset(rd)
		r, err := icap.ReadRequestWith(br, &p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			b.Fatal(err)
		}
	}
}
