package icap_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// trailerMux serves /verdict: it reads the whole body, then answers with
// the body echoed and an ICAP trailer "X-Verdict: got=<the request's
// X-Sum ICAP trailer>", so that a wire test sees both directions; and
// /verdict204, which announces the same trailer on a 204 without reading.
func trailerMux() *icap.ServeMux {
	mux := icap.NewServeMux()
	all := icap.ServiceOptions{Allow204: true, AllowTrailers: true}
	mux.HandleFunc("/verdict", func(w icap.ResponseWriter, r *icap.Request) {
		tw := w.(icap.ICAPTrailerWriter)
		tw.ICAPTrailer()["X-Verdict"] = nil // announce before the head
		msg := r.Message()
		hasBody := msg != nil && r.HasBody()
		w.WriteHeader(icap.StatusOK, msg, hasBody)
		if hasBody {
			if _, err := io.Copy(w, r.Body); err != nil {
				return
			}
		}
		tw.ICAPTrailer().Set("X-Verdict", "got="+r.ICAPTrailer.Get("X-Sum"))
	}, all)
	mux.HandleFunc("/verdict204", func(w icap.ResponseWriter, r *icap.Request) {
		w.Header().Set("Trailer", "X-Verdict")
		w.WriteHeader(icap.StatusNoContent, nil, false)
		w.(icap.ICAPTrailerWriter).ICAPTrailer().Set("X-Verdict", "clean")
	}, all)
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) { icap.NoModification(w, r) }, all)
	return mux
}

// reqmodNull builds a REQMOD request with a null body and extra ICAP
// header lines (LF-terminated).
func reqmodNull(path, extra string) string {
	req := crlf("GET /x HTTP/1.1\nHost: origin.test\n\n")
	return crlf("REQMOD icap://127.0.0.1"+path+" ICAP/1.0\nHost: 127.0.0.1\n"+extra) +
		"Encapsulated: req-hdr=0, null-body=" + itoa(len(req)) + "\r\n\r\n" + req
}

// TestICAPTrailer sends requests with and without an ICAP trailer
// (draft-rousskov-icap-trailers) and checks what the handler saw, the
// Trailer header and ICAP trailer of the answer, and that the connection
// stays in sync: each case is followed by an OPTIONS on the same
// connection.
func TestICAPTrailer(t *testing.T) {
	const sum = "X-Sum: 42\r\n\r\n"
	tests := []struct {
		name        string
		req         string
		status      int
		body        string
		icapTrailer string // raw ICAP trailer of the answer
		announced   bool   // the answer has a Trailer header (even if icapTrailer is empty)
		closed      bool   // the server closes after answering
	}{
		{
			name:   "body and trailer, Allow: trailers",
			req:    respmod("/verdict", "Allow: trailers\nTrailer: X-Sum\n", "hello", chunks("", "hello")+sum),
			status: 200, body: "hello", icapTrailer: "X-Verdict: got=42\n",
		},
		{
			name:   "trailer announced, client does not allow one back",
			req:    respmod("/verdict", "Trailer: X-Sum\n", "hello", chunks("", "hello")+sum),
			status: 200, body: "hello",
		},
		{
			name:   "no trailer sent, answer announces one",
			req:    respmod("/verdict", "Allow: trailers\n", "hello", chunks("", "hello")),
			status: 200, body: "hello", icapTrailer: "X-Verdict: got=\n",
		},
		{
			name:   "null body: trailer after the encapsulated header",
			req:    reqmodNull("/verdict", "Allow: trailers\nTrailer: X-Sum\n") + sum,
			status: 200, icapTrailer: "X-Verdict: got=42\n",
		},
		{
			name:   "preview with ieof and trailer",
			req:    respmod("/verdict", "Allow: trailers\nPreview: 10\nTrailer: X-Sum\n", "hello", chunks("ieof", "hello")+sum),
			status: 200, body: "hello", icapTrailer: "X-Verdict: got=42\n",
		},
		{
			name:   "early 204: body and trailer drained",
			req:    respmod("/echo", "Allow: 204, trailers\nTrailer: X-Sum\n", "hello", chunks("", "hello", "world")+sum),
			status: 204,
		},
		{
			name:   "204 inside a preview: no trailer follows",
			req:    respmod("/echo", "Allow: trailers\nPreview: 2\nTrailer: X-Sum\n", "hello", chunks("", "he")),
			status: 204,
		},
		{
			name:   "204 with an ICAP trailer",
			req:    respmod("/verdict204", "Allow: 204, trailers\n", "hello", chunks("", "hello")),
			status: 204, icapTrailer: "X-Verdict: clean\n",
		},
		{
			name: "malformed trailer closes the connection",
			req:  respmod("/verdict", "Allow: trailers\nTrailer: X-Sum\n", "hello", chunks("", "hello")+"no colon\r\n\r\n"),
			// The body arrived whole: it is echoed, the handler's read
			// fails on the trailer (so it sets no verdict), and the
			// connection, out of sync, is closed.
			status: 200, body: "hello", announced: true, closed: true,
		},
	}
	s, _ := startServer(t, trailerMux(), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, s.URL)
			rc.send(tt.req)
			r := rc.read()
			if r.Status != tt.status || string(r.Body) != tt.body || r.ICAPTrailer != tt.icapTrailer {
				t.Fatalf("got %d body %q ICAP trailer %q (Trailer header %q), want %d %q %q",
					r.Status, r.Body, r.ICAPTrailer, r.Header.Get("Trailer"), tt.status, tt.body, tt.icapTrailer)
			}
			if (tt.icapTrailer != "" || tt.announced) != (r.Header.Get("Trailer") != "") {
				t.Errorf("Trailer header %q with ICAP trailer %q", r.Header.Get("Trailer"), r.ICAPTrailer)
			}
			if r.Header.Get("Trailer") != "" && r.Header.Get("Allow") != "trailers" {
				t.Errorf("a response with a Trailer header must say Allow: trailers (Squid requires it); Allow %q", r.Header.Get("Allow"))
			}
			if tt.closed {
				rc.expectEOF()
				return
			}
			rc.send(crlf("OPTIONS icap://127.0.0.1/verdict ICAP/1.0\nHost: 127.0.0.1\n\n"))
			if r := rc.read(); r.Status != 200 || r.Header.Get("Methods") == "" {
				t.Fatalf("OPTIONS after the transaction: %d %v", r.Status, r.Header)
			}
		})
	}
}

// TestClientICAPTrailer sends ICAP trailers with the Client and reads the
// server's, on one reused connection: with a body, with a preview that
// holds the whole body, and with a null body.
func TestClientICAPTrailer(t *testing.T) {
	s, _ := startServer(t, trailerMux(), nil)
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	for _, tc := range []struct {
		name    string
		method  string
		preview int
		body    string
	}{
		{"respmod body", icap.MethodRESPMOD, -1, strings.Repeat("x", 100<<10)},
		{"respmod preview ieof", icap.MethodRESPMOD, 1024, "short"},
		{"reqmod null body", icap.MethodREQMOD, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hreq, _ := http.NewRequest("GET", "http://origin.test/x", nil)
			var hresp *http.Response
			if tc.method == icap.MethodRESPMOD {
				hresp = &http.Response{StatusCode: 200, Proto: "HTTP/1.1", Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body))}
			}
			req, err := icap.NewRequest(tc.method, s.ServiceURL("/verdict"), hreq, hresp)
			if err != nil {
				t.Fatal(err)
			}
			req.Preview, req.AllowTrailers = tc.preview, true
			req.ICAPTrailer = http.Header{"X-Sum": {"7"}}
			resp, err := cl.Do(req.WithContext(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			if resp.ICAPTrailer == nil {
				t.Fatalf("no Trailer header in %v", resp.Header)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.body || resp.ICAPTrailer.Get("X-Verdict") != "got=7" {
				t.Fatalf("body %d bytes, ICAP trailer %v; want %d bytes and X-Verdict: got=7", len(b), resp.ICAPTrailer, len(tc.body))
			}
		})
	}
	if n := s.Accepted(); n != 1 {
		t.Errorf("%d connections for three transactions, want 1 (trailers kept the connection in sync)", n)
	}
}

// TestICAPTrailerLargeBody talks to the server as Squid 5.7 does, with
// bodies far larger than the socket buffers: "Allow: 204, trailers", no
// ICAP trailer of its own, a 1 KB preview, then (after 100 Continue) the
// rest of the body written while the echoed answer is read. The answer
// must be the whole body followed by the ICAP trailer, and the connection
// must be ready for the next request: no wait for a request trailer that
// was not announced, no deadlock between echoing and reading.
func TestICAPTrailerLargeBody(t *testing.T) {
	s, _ := startServer(t, trailerMux(), nil)
	for _, size := range []int{1 << 20, 8 << 20} {
		t.Run(itoa(size), func(t *testing.T) {
			body := strings.Repeat("0123456789abcdef", size/16)
			rc := dialRaw(t, s.URL)
			rc.send(respmod("/verdict", "Allow: 204, trailers\nPreview: 1024\n", body, chunks("", body[:1024])))
			if r := rc.read(); r.Status != icap.StatusContinue {
				t.Fatalf("after the preview: status %d, want 100", r.Status)
			}
			var rest strings.Builder
			for off := 1024; off < size; off += 64 << 10 {
				part := body[off:min(off+64<<10, size)]
				fmt.Fprintf(&rest, "%x\r\n%s\r\n", len(part), part)
			}
			rest.WriteString("0\r\n\r\n")
			sent := make(chan error, 1)
			go func() {
				rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err := io.WriteString(rc.c, rest.String())
				sent <- err
			}()
			r := rc.read()
			if err := <-sent; err != nil {
				t.Fatalf("send the body: %v", err)
			}
			if r.Status != 200 || len(r.Body) != size || string(r.Body) != body || r.ICAPTrailer != "X-Verdict: got=\n" {
				t.Fatalf("got %d, %d body bytes (intact %v), ICAP trailer %q; want 200, %d, %q",
					r.Status, len(r.Body), string(r.Body) == body, r.ICAPTrailer, size, "X-Verdict: got=\n")
			}
			rc.send(crlf("OPTIONS icap://127.0.0.1/verdict ICAP/1.0\nHost: 127.0.0.1\n\n"))
			if r := rc.read(); r.Status != 200 {
				t.Fatalf("OPTIONS after the transaction: %d", r.Status)
			}
		})
	}
}
