package icapservice

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
)

// codingPolicy transcodes text for slow (Save-Data) clients with a
// profile that minifies HTML and gzips text, like policy.toml's.
const codingPolicy = `
[profiles.slow.html]
minify = true
[profiles.slow.compression]
encoding = "gzip"

[[rules]]
name = "slow-text"
match.service = ["respmod"]
match.bandwidth = ["slow"]
action = "transcode"
profile = "slow"
`

// codingService is a Service with the real Transcoder under codingPolicy.
func codingService(t testing.TB, dir string) *Service {
	t.Helper()
	path := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(path, []byte(codingPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := policy.NewHolder(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Service{Policy: h, Transcoder: &adapt.Transcoder{}, MaxBodyBytes: 32 << 20, Counters: &Counters{}}
}

// bbcPage returns the corpus's 115 KB BBC page, and the same repeated to
// over 8 MB (over EarlyHoldBytes).
func bbcPage(t testing.TB) (page, huge []byte) {
	t.Helper()
	page = testenv.ReadCorpus(t, "html", "sample_bbc.html")
	return page, bytes.Repeat(page, 8<<20/len(page)+1)
}

// TestEarlyCoding: a text body committed early (over EarlyCommitBytes or
// of unknown length) for a slow client that accepts gzip arrives
// gzip-encoded, under a header that says so (no Content-Length, Vary:
// Accept-Encoding, weak ETag): minified when it fits EarlyHoldBytes, the
// original byte for byte over it. A client without Accept-Encoding gets
// identity, a fast client and no-transform the origin's bytes, and a
// gzip-encoded origin keeps its coding as before.
func TestEarlyCoding(t *testing.T) {
	page, huge := bbcPage(t)
	svc := codingService(t, t.TempDir())
	for _, tc := range []struct {
		name    string
		body    []byte
		length  bool // send Content-Length
		reqHdr  http.Header
		respHdr http.Header
		wantCE  string // Content-Encoding of the answer
		adapted bool   // decoded body minified (else the original)
		outcome string // early-commit outcome counted ("": none)
	}{
		{name: "slow gzip", body: page, length: true, reqHdr: http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip, deflate"}},
			wantCE: "gzip", adapted: true, outcome: "adapted"},
		{name: "slow gzip unknown length", body: page, reqHdr: http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"br;q=0.9, gzip"}},
			wantCE: "gzip", adapted: true, outcome: "adapted"},
		{name: "slow gzip over EarlyHoldBytes", body: huge, length: true, reqHdr: http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip"}},
			wantCE: "gzip", outcome: OutcomeTooLarge},
		{name: "slow without Accept-Encoding", body: page, length: true, reqHdr: http.Header{"Save-Data": {"on"}},
			adapted: true, outcome: "adapted"},
		{name: "slow refusing gzip", body: page, length: true, reqHdr: http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip;q=0"}},
			adapted: true, outcome: "adapted"},
		{name: "fast", body: page, length: true, reqHdr: http.Header{"Accept-Encoding": {"gzip"}}},
		{name: "no-transform", body: page, length: true, reqHdr: http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip"}},
			respHdr: http.Header{"Cache-Control": {"no-transform"}}},
		{name: "origin gzip", body: testenv.Gzip(t, page), reqHdr: http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip"}},
			respHdr: http.Header{"Content-Encoding": {"gzip"}}, wantCE: "gzip", adapted: true, outcome: "adapted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc.Counters = &Counters{}
			hreq, _ := http.NewRequest(http.MethodGet, "http://origin.test/news", nil)
			for k, v := range tc.reqHdr {
				hreq.Header[k] = v
			}
			hresp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, ContentLength: -1,
				Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}, "Etag": {`"bbc1"`}}}
			for k, v := range tc.respHdr {
				hresp.Header[k] = v
			}
			if tc.length {
				hresp.ContentLength = int64(len(tc.body))
				hresp.Header.Set("Content-Length", strconv.Itoa(len(tc.body)))
			}
			rec := icaptest.NewRecorder()
			svc.ServeICAP(rec, icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/respmod", hreq, hresp, bytes.NewReader(tc.body)))
			if rec.Code == icap.StatusNoContent && !tc.adapted && tc.wantCE == "" {
				return // no modification: the origin's bytes
			}
			resp, ok := rec.Msg.(*http.Response)
			if rec.Code != icap.StatusOK || !ok {
				t.Fatalf("ICAP %d, message %T", rec.Code, rec.Msg)
			}
			h := resp.Header
			if got := h.Get("Content-Encoding"); got != tc.wantCE {
				t.Errorf("Content-Encoding %q, want %q", got, tc.wantCE)
			}
			decoded := rec.Body.Bytes()
			if tc.wantCE == "gzip" {
				decoded = testenv.Gunzip(t, decoded)
			}
			orig := tc.body
			if tc.respHdr.Get("Content-Encoding") == "gzip" {
				orig = page
			}
			switch {
			case tc.adapted:
				if len(decoded) >= len(orig) || !bytes.Contains(decoded, []byte("</html>")) || !bytes.HasPrefix(bytes.ToLower(decoded), []byte("<!doctype html>")) {
					t.Errorf("decoded body of %d bytes (from %d): want minified HTML", len(decoded), len(orig))
				}
			case !bytes.Equal(decoded, orig):
				t.Errorf("decoded body of %d bytes differs from the original's %d", len(decoded), len(orig))
			}
			if tc.wantCE != "" && tc.respHdr.Get("Content-Encoding") == "" {
				if h.Get("Content-Length") != "" || !bytes.Contains([]byte(h.Get("Vary")), []byte("Accept-Encoding")) ||
					len(h.Get("ETag")) < 3 || h.Get("ETag")[:2] != "W/" || h.Get("ETag") == `W/"bbc1"` {
					t.Errorf("coded header %v", h)
				}
				if len(rec.Body.Bytes()) >= len(orig) {
					t.Errorf("%d gzipped bytes for a %d-byte page", rec.Body.Len(), len(orig))
				}
			}
			if n := svc.Counters.Early(tc.outcome); tc.outcome != "" && n != 1 {
				t.Errorf("early commits with outcome %q: %d, want 1", tc.outcome, n)
			}
			t.Logf("%s: %d bytes from the origin (%d decoded), %d sent (%q, %d decoded)",
				tc.name, len(tc.body), len(orig), rec.Body.Len(), tc.wantCE, len(decoded))
		})
	}
}

// TestEarlyCodingBrokenBody: when the origin's body breaks off after an
// early commit that announced gzip and after the hold limit, the gzip
// stream sent is left without its end, so no client can take the part
// sent for a whole (shorter) page.
func TestEarlyCodingBrokenBody(t *testing.T) {
	_, huge := bbcPage(t)
	svc := codingService(t, t.TempDir())
	hreq, _ := http.NewRequest(http.MethodGet, "http://origin.test/news", nil)
	hreq.Header.Set("Save-Data", "on")
	hreq.Header.Set("Accept-Encoding", "gzip")
	hresp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ContentLength: -1, Header: http.Header{"Content-Type": {"text/html"}}}
	broken := io.MultiReader(bytes.NewReader(huge[:3<<20]), iotest.ErrReader(io.ErrClosedPipe))
	rec := icaptest.NewRecorder()
	svc.ServeICAP(rec, icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/respmod", hreq, hresp, broken))
	resp, ok := rec.Msg.(*http.Response)
	if !ok || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("ICAP %d, message %v", rec.Code, rec.Msg)
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, zr); err != io.ErrUnexpectedEOF {
		t.Errorf("broken body: %d bytes decoded, %v; want io.ErrUnexpectedEOF", n, err)
	}
}

// TestEarlyCodingThroughSquid: behind Squid 5.7, the BBC page (committed
// early: over EarlyCommitBytes) reaches a slow client accepting gzip
// minified and gzip-encoded, an 8 MB page of unknown length (over
// EarlyHoldBytes) gzip-encoded and byte-identical once decoded; a slow
// client without Accept-Encoding gets the minified page uncoded, a fast
// client the origin's bytes.
func TestEarlyCodingThroughSquid(t *testing.T) {
	page, huge := bbcPage(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if strings.HasPrefix(r.URL.Path, "/huge/") {
			w.(http.Flusher).Flush() // no Content-Length: committed early
			w.Write(huge)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		w.Write(page)
	}))
	t.Cleanup(origin.Close)
	svc := codingService(t, t.TempDir())
	_, srv := serveICAP(t, svc)
	sq := squidtest.Start(t, squidtest.Config{Services: []squidtest.Service{
		{Name: "req", Point: squidtest.ReqmodPrecache, URL: srv.ServiceURL("/reqmod")},
		{Name: "resp", Point: squidtest.RespmodPrecache, URL: srv.ServiceURL("/respmod")},
	}})
	client := sq.Client()
	client.Timeout = 30 * time.Second
	for i, tc := range []struct {
		name, path string
		hdr        http.Header
		wantCE     string
		adapted    bool // minified, else the origin's bytes once decoded
	}{
		{"slow gzip", "/page/", http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip"}}, "gzip", true},
		{"slow gzip over EarlyHoldBytes", "/huge/", http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"gzip"}}, "gzip", false},
		{"slow identity", "/page/", http.Header{"Save-Data": {"on"}, "Accept-Encoding": {"identity"}}, "", true},
		{"fast gzip", "/page/", http.Header{"Accept-Encoding": {"gzip"}}, "", false},
	} {
		// testenv.Get with an explicit Accept-Encoding: the transport
		// leaves the body coded.
		resp, body := testenv.Get(t, client, fmt.Sprintf("%s%s%d", origin.URL, tc.path, i), tc.hdr)
		if got := resp.Header.Get("Content-Encoding"); resp.StatusCode != 200 || got != tc.wantCE {
			t.Errorf("%s: %d, Content-Encoding %q, want %q", tc.name, resp.StatusCode, got, tc.wantCE)
			continue
		}
		decoded := body
		if tc.wantCE == "gzip" {
			decoded = testenv.Gunzip(t, body)
		}
		want := page
		if tc.path == "/huge/" {
			want = huge
		}
		if tc.adapted {
			if len(decoded) >= len(want) || !bytes.HasSuffix(bytes.TrimSpace(decoded), []byte("</html>")) {
				t.Errorf("%s: %d bytes decoded from %d: want the minified page", tc.name, len(decoded), len(want))
			}
		} else if !bytes.Equal(decoded, want) {
			t.Errorf("%s: %d bytes decoded, want the origin's %d", tc.name, len(decoded), len(want))
		}
		t.Logf("%s: origin %d bytes, client received %d (%q), %d decoded", tc.name, len(want), len(body), tc.wantCE, len(decoded))
	}
	if a, tl := svc.Counters.Early("adapted"), svc.Counters.Early(OutcomeTooLarge); a != 2 || tl != 1 {
		t.Errorf("early commits adapted %d, too-large %d; want 2 and 1", a, tl)
	}
}

// BenchmarkEarlyCoding compares an early commit of the BBC page (held,
// minified) and of an 8 MB page (over EarlyHoldBytes, streamed) for a
// slow client accepting gzip with the same for one accepting only
// identity (the peer: what was sent before compression was announced).
// It reports bytes sent per page.
func BenchmarkEarlyCoding(b *testing.B) {
	page, huge := bbcPage(b)
	svc := codingService(b, b.TempDir())
	for _, body := range []struct {
		name string
		b    []byte
	}{{"bbc", page}, {"8MB", huge}} {
		for _, ae := range []string{"gzip", "identity"} {
			b.Run(body.name+"/"+ae, func(b *testing.B) {
				b.SetBytes(int64(len(body.b)))
				b.ReportAllocs()
				var sent int
				for b.Loop() {
					hreq, _ := http.NewRequest(http.MethodGet, "http://origin.test/news", nil)
					hreq.Header.Set("Save-Data", "on")
					hreq.Header.Set("Accept-Encoding", ae)
					hresp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ContentLength: -1, Header: http.Header{"Content-Type": {"text/html"}}}
					rec := icaptest.NewRecorder()
					svc.ServeICAP(rec, icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/respmod", hreq, hresp, bytes.NewReader(body.b)))
					sent = rec.Body.Len()
				}
				b.ReportMetric(float64(sent), "sent-bytes")
			})
		}
	}
}
