package icap_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

// newEchoServer serves /echo (NoModification) and /full (always a 200
// echo) on loopback.
func newEchoServer(t testing.TB) *icaptest.Server {
	t.Helper()
	mux := icap.NewServeMux()
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {
		icap.NoModification(w, r)
	}, icap.ServiceOptions{Service: "echo", ServiceID: "echo", Allow204: true, Allow206: true, AllowTrailers: true, XInclude: []string{"X-Client-IP"}})
	mux.HandleFunc("/full", func(w icap.ResponseWriter, r *icap.Request) {
		icap.Echo(w, r)
	}, icap.ServiceOptions{Service: "full echo", Methods: []string{icap.MethodRESPMOD, icap.MethodREQMOD}})
	s := icaptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func httpResponse(body []byte) *http.Response {
	return &http.Response{
		Proto: "HTTP/1.1", StatusCode: 200, Status: "200 OK",
		Header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:   io.NopCloser(bytes.NewReader(body)),
	}
}

func httpRequest(method, target string, body []byte) *http.Request {
	u, _ := url.Parse(target)
	r := &http.Request{Method: method, URL: u, Proto: "HTTP/1.1", Host: u.Host, Header: http.Header{"User-Agent": {"test"}}, Body: http.NoBody}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return r
}

func newReq(t testing.TB, method, u string, hreq *http.Request, hresp *http.Response) *icap.Request {
	t.Helper()
	r, err := icap.NewRequest(method, u, hreq, hresp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return r.WithContext(ctx)
}

func TestEndToEndBasic(t *testing.T) {
	s := newEchoServer(t)
	c := s.Client()
	body := bytes.Repeat([]byte("0123456789"), 1000)

	resp, err := c.Options(context.Background(), s.ServiceURL("/echo"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Methods") != "REQMOD, RESPMOD" || !strings.HasPrefix(resp.ISTag(), `"`) {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}

	for _, tc := range []struct {
		name     string
		path     string
		preview  int
		allow204 bool
		want     int
	}{
		{"full echo no preview", "/full", -1, false, 200},
		{"preview 204", "/echo", 1024, false, 204},
		{"allow 204", "/echo", -1, true, 204},
		{"preview no 204 service", "/full", 1024, true, 200},
		{"echo no allow", "/echo", -1, false, 206},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newReq(t, icap.MethodRESPMOD, s.ServiceURL(tc.path), httpRequest("GET", "http://example.com/x", nil), httpResponse(body))
			req.Preview = tc.preview
			req.Allow204 = tc.allow204
			req.Allow206 = tc.name == "echo no allow"
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == 200 {
				if !bytes.Equal(got, body) {
					t.Fatalf("echoed %d bytes, want %d", len(got), len(body))
				}
				if resp.Response == nil || resp.Response.Header.Get("Content-Type") != "text/plain" {
					t.Fatalf("encapsulated response %+v", resp.Response)
				}
			}
		})
	}
	if n := s.Accepted(); n != 1 {
		t.Errorf("accepted %d connections, want 1 (persistent)", n)
	}
}
