package adapt

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/filters/icapservice"
	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// TestTranscodeResponse runs icapservice with the Transcoder (as a
// policy.ResponseTranscoder) on a RESPMOD of CSS for a client accepting
// gzip, held whole: the answer carries the compressed body with its own
// Content-Length, Content-Encoding, strong ETag, Vary and X-Adapted, and
// keeps the policy's header edits. A body under the profile's min_bytes
// passes unchanged. Committed early (a body over EarlyCommitBytes), the
// CSS is still gzipped (the profile does not minify CSS, so the original
// is: outcome not-applicable): the early header announces gzip, a weak
// ETag and Vary, without Content-Length.
func TestTranscodeResponse(t *testing.T) {
	css := testenv.ReadCorpus(t, "html", "sample_bootstrap.css")
	h := holder(t, `
[[rules]]
name = "css"
match.content_type = ["text/css"]
action = "transcode"
profile = "page"
response_headers.set = { "X-Edited" = "yes" }
`)
	tr := &Transcoder{}
	svc := &icapservice.Service{Policy: h, Transcoder: tr, EarlyCommitBytes: 1 << 20, Counters: &icapservice.Counters{}}
	serve := func(body []byte) (*icaptest.ResponseRecorder, *http.Response) {
		return serveRespmod(t, svc, "http://origin.test/site.css", "text/css", `"v1"`, body)
	}

	rec, resp := serve(css)
	hdr := resp.Header
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, css) {
		t.Fatalf("gunzipped body differs from the CSS (%v)", err)
	}
	for k, want := range map[string]string{
		"Content-Encoding": "gzip",
		"Content-Length":   strconv.Itoa(rec.Body.Len()),
		"Content-Type":     "text/css",
		"X-Edited":         "yes",
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if resp.ContentLength != int64(rec.Body.Len()) {
		t.Errorf("ContentLength %d, body %d", resp.ContentLength, rec.Body.Len())
	}
	if et := hdr.Get("ETag"); et == `"v1"` || !strings.HasPrefix(et, `"ea-`) {
		t.Errorf("ETag %q: want transcode's strong ETag", et)
	}
	if v := hdr.Get("Vary"); !strings.Contains(v, "Accept-Encoding") {
		t.Errorf("Vary %q lacks Accept-Encoding", v)
	}
	if xa := hdr.Get("X-Adapted"); !strings.Contains(xa, "gzip") || !strings.Contains(xa, "original="+strconv.Itoa(len(css))) {
		t.Errorf("X-Adapted %q", xa)
	}

	small := []byte("body { color: red; }\n")
	rec, resp = serve(small)
	if !bytes.Equal(rec.Body.Bytes(), small) || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("X-Adapted") != "" ||
		resp.Header.Get("ETag") != `"v1"` || resp.Header.Get("Content-Length") != strconv.Itoa(len(small)) {
		t.Errorf("a body under min_bytes was changed: %q %v", rec.Body.Bytes(), resp.Header)
	}

	svc.EarlyCommitBytes = 1 << 10
	rec, resp = serve(css)
	hdr = resp.Header
	if hdr.Get("Content-Encoding") != "gzip" || hdr.Get("Content-Length") != "" || !strings.HasPrefix(hdr.Get("ETag"), `W/"ea-`) ||
		!strings.Contains(hdr.Get("Vary"), "Accept-Encoding") || hdr.Get("X-Edited") != "yes" {
		t.Errorf("CSS over EarlyCommitBytes: header %v", hdr)
	}
	zr, err = gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, err = io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, css) || rec.Body.Len() >= len(css) {
		t.Errorf("CSS over EarlyCommitBytes: %d gzipped bytes decode to %d (%v), want the original's %d", rec.Body.Len(), len(plain), err, len(css))
	}
	if n := svc.Counters.Early("not-applicable"); n != 1 {
		t.Errorf("early commits sending the original: %d, want 1", n)
	}
}

// TestEarlyCommitClaimsOnlyWhatIsSent runs icapservice with the
// Transcoder on RESPMODs of a real photo and of the same photo cut in
// half (a truncated download, which fails to decode), committed early
// (a body over EarlyCommitBytes) and held whole (NoEarlyCommit, as in
// icapd's proxy). In every case the header describes the body actually
// sent: a transcode that failed leaves the original bytes under a header
// without X-Adapted, Content-Encoding or a changed Content-Type (and,
// held whole, with the original's Content-Length and ETag); an early
// header, sent before the outcome is known, claims no transcode even
// when it succeeds; a held one that succeeded names it, with the new
// body's length. Held, a body over EarlyHoldBytes (what an early commit
// would hold) passes unchanged under its own header.
func TestEarlyCommitClaimsOnlyWhatIsSent(t *testing.T) {
	photo := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg")
	truncated := photo[:len(photo)/2]
	h := holder(t, `
[[rules]]
name = "photos"
match.content_type = ["image/jpeg"]
action = "transcode"
profile = "keep"
`)
	for _, tc := range []struct {
		name    string
		body    []byte
		held    bool  // NoEarlyCommit
		hold    int64 // EarlyHoldBytes
		adapted bool  // the transcode succeeds
	}{
		{"early, truncated", truncated, false, 0, false},
		{"early, whole", photo, false, 0, true},
		{"held, truncated", truncated, true, 0, false},
		{"held, whole", photo, true, 0, true},
		{"held, over EarlyHoldBytes", photo, true, 256 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &icapservice.Service{Policy: h, Transcoder: &Transcoder{}, EarlyCommitBytes: 16 << 10,
				EarlyHoldBytes: tc.hold, NoEarlyCommit: tc.held, Counters: &icapservice.Counters{}}
			rec, resp := serveRespmod(t, svc, "http://origin.test/bird.jpg", "image/jpeg", `"b1"`, tc.body)
			got, hdr := rec.Body.Bytes(), resp.Header
			if hdr.Get("Content-Type") != "image/jpeg" || hdr.Get("Content-Encoding") != "" {
				t.Errorf("Content-Type %q, Content-Encoding %q; want the original's image/jpeg, none", hdr.Get("Content-Type"), hdr.Get("Content-Encoding"))
			}
			if cl := hdr.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(got)) {
				t.Errorf("Content-Length %s for a %d-byte body", cl, len(got))
			}
			if !tc.adapted {
				if !bytes.Equal(got, tc.body) {
					t.Fatalf("failed transcode sent %d bytes, not the original %d", len(got), len(tc.body))
				}
				if xa := hdr.Get("X-Adapted"); xa != "" {
					t.Errorf("original bytes sent under X-Adapted %q", xa)
				}
				if tc.held && (hdr.Get("Content-Length") != strconv.Itoa(len(tc.body)) || hdr.Get("ETag") != `"b1"`) {
					t.Errorf("original held whole: header %v, want its Content-Length and ETag", hdr)
				}
				if !tc.held {
					if n := svc.Counters.Early("adapted"); n != 0 {
						t.Errorf("truncated photo counted adapted %d times", n)
					}
				}
				return
			}
			if info, err := image.Probe(got); err != nil || info.Format != image.JPEG || info.Width != 800 || len(got) >= len(tc.body) {
				t.Fatalf("adapted photo: %+v (%v), %d bytes from %d", info, err, len(got), len(tc.body))
			}
			xa := hdr.Get("X-Adapted")
			switch {
			case tc.held && (!strings.Contains(xa, "original="+strconv.Itoa(len(tc.body))) || hdr.Get("Content-Length") != strconv.Itoa(len(got))):
				t.Errorf("held and adapted: X-Adapted %q, Content-Length %q (body %d bytes)", xa, hdr.Get("Content-Length"), len(got))
			case !tc.held && xa != "":
				t.Errorf("early header claims X-Adapted %q before the outcome is known", xa)
			}
			if !tc.held {
				if n := svc.Counters.Early("adapted"); n != 1 {
					t.Errorf("early commits adapted: %d, want 1", n)
				}
			}
		})
	}
}

// holder loads the test profiles and rules into a policy.Holder.
func holder(t *testing.T, rules string) *policy.Holder {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(profiles+rules), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := policy.NewHolder(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveRespmod runs svc on a RESPMOD of a 200 response to a GET of url
// by a client accepting gzip: body, of type ctype with ETag etag and its
// Content-Length. It fails the test unless svc answers 200 with a
// response, which it returns with the recorder.
func serveRespmod(t *testing.T, svc *icapservice.Service, url, ctype, etag string, body []byte) (*icaptest.ResponseRecorder, *http.Response) {
	t.Helper()
	hreq, _ := http.NewRequest("GET", url, nil)
	hreq.Header.Set("Accept-Encoding", "gzip")
	hresp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ContentLength: int64(len(body)), Header: http.Header{
		"Content-Type": {ctype}, "Etag": {etag}, "Content-Length": {strconv.Itoa(len(body))}}}
	rec := icaptest.NewRecorder()
	svc.ServeICAP(rec, icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/respmod", hreq, hresp, bytes.NewReader(body)))
	resp, _ := rec.Msg.(*http.Response)
	if rec.Code != icap.StatusOK || resp == nil {
		t.Fatalf("ICAP %d, message %T", rec.Code, rec.Msg)
	}
	return rec, resp
}
