package icap_test

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
)

// describeAll renders a request and its whole body with describe.
func describeAll(r *icap.Request) string {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "body error: " + err.Error()
	}
	return describe(r, body, nil)
}

// TestReusedRequestNoStaleFields sends requests of different shapes on one
// connection (the server reuses its request structures, header maps and
// parsed URLs from one to the next) and checks that the handler sees each
// exactly as a fresh parse of the same bytes does: nothing left over from
// the request before.
func TestReusedRequestNoStaleFields(t *testing.T) {
	reqHdr := crlf("POST http://a.test/up?x=1 HTTP/1.1\nHost: a.test\nX-Req: 1\nX-Req: 2\nContent-Length: 3\n\n")
	reqmod := crlf("REQMOD icap://127.0.0.1/echo ICAP/1.0\nHost: 127.0.0.1\nX-Client-IP: 192.0.2.1\nAllow: 204, trailers\nPreview: 4\nX-A: 1\n") +
		fmt.Sprintf("Encapsulated: req-hdr=0, req-body=%d\r\n\r\n", len(reqHdr)) + reqHdr + chunks("ieof", "abc")
	reqHdr2 := crlf("GET http://b.test/other HTTP/1.0\nHost: b.test\n\n")
	reqmod2 := crlf("REQMOD icap://127.0.0.1/echo ICAP/1.0\nHost: 127.0.0.1\n") +
		fmt.Sprintf("Encapsulated: req-hdr=0, null-body=%d\r\n\r\n", len(reqHdr2)) + reqHdr2
	withTrailer := "0\r\nX-T: done\r\n\r\n"
	reqs := []string{
		reqmod,
		respmod("/echo", "Allow: 204\nX-B: 2\nX-B: 3\n", "hello", "5\r\nhello\r\n"+withTrailer),
		reqmod,
		reqmod2,
		crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: 127.0.0.1\n\n"),
		reqmod,
		respmod("/echo", "Allow: 204\n", "", "0\r\n\r\n"),
	}
	seen := make(chan string, 1)
	mux := icap.NewServeMux()
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {
		seen <- describeAll(r)
		w.WriteHeader(icap.StatusNoContent, nil, false)
	}, icap.ServiceOptions{Allow204: true})
	s, _ := startServer(t, icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
		if r.Method == icap.MethodOPTIONS {
			seen <- describeAll(r)
		}
		mux.ServeICAP(w, r)
	}), nil)
	rc := dialRaw(t, s.URL)
	for i, raw := range reqs {
		want, err := icap.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatalf("request %d: parse: %v", i, err)
		}
		wantDesc := describeAll(want)
		rc.send(raw)
		r := rc.read() // the handler reported what it saw before answering
		var got string
		select {
		case got = <-seen:
		default:
			t.Fatalf("request %d: answered %d without the handler", i, r.Status)
		}
		if got != wantDesc {
			t.Errorf("request %d: the handler saw\n%s\nwant (fresh parse)\n%s", i, got, wantDesc)
		}
		if r.Status != 204 && r.Status != 200 {
			t.Fatalf("request %d: status %d", i, r.Status)
		}
	}
}
