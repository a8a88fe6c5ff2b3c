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
	css, err := os.ReadFile(filepath.Join(testenv.Corpus(t, "html"), "sample_bootstrap.css"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.toml")
	src := profiles + `
[[rules]]
name = "css"
match.content_type = ["text/css"]
action = "transcode"
profile = "page"
response_headers.set = { "X-Edited" = "yes" }
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := policy.NewHolder(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transcoder{}
	svc := &icapservice.Service{Policy: h, Transcoder: tr, EarlyCommitBytes: 1 << 20, Counters: &icapservice.Counters{}}

	serve := func(body []byte) (*icaptest.ResponseRecorder, *http.Response) {
		hreq, _ := http.NewRequest("GET", "http://origin.test/site.css", nil)
		hreq.Header.Set("Accept-Encoding", "gzip")
		hresp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ContentLength: int64(len(body)), Header: http.Header{
			"Content-Type": {"text/css"}, "Etag": {`"v1"`}, "Content-Length": {strconv.Itoa(len(body))}}}
		rec := icaptest.NewRecorder()
		svc.ServeICAP(rec, icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/respmod", hreq, hresp, bytes.NewReader(body)))
		resp, _ := rec.Msg.(*http.Response)
		if rec.Code != icap.StatusOK || resp == nil {
			t.Fatalf("ICAP %d, message %T", rec.Code, rec.Msg)
		}
		return rec, resp
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
