package adapt

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// TestEarly commits to the header of a transcode before the body is
// read: the original's type, no length, a weak ETag from the original's
// and the profile, no X-Adapted (the transcode may yet fail); the body it then produces keeps that type (WebP is
// not offered even to a client that accepts it), and a body that cannot
// be transcoded is an error (the caller sends the original).
func TestEarly(t *testing.T) {
	p := loadProfiles(t)
	photo := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg")
	tr := &Transcoder{}
	decide := func(name string) *policy.Decision {
		return &policy.Decision{Action: policy.Transcode, Rule: "r", Profile: p.Profile(name)}
	}
	req := &http.Request{Header: http.Header{"Accept": {"image/webp,image/*"}}}
	jpeg := func(extra ...string) *http.Response {
		h := http.Header{"Content-Type": {"image/jpeg"}, "Content-Length": {strconv.Itoa(len(photo))}, "Etag": {`"p1"`}, "Digest": {"sha-256=x"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return &http.Response{StatusCode: 200, Header: h, ContentLength: int64(len(photo))}
	}

	for _, tc := range []struct {
		profile string
		resp    *http.Response
		height  int // of the output; 0: no early commit
	}{
		{"webp", jpeg(), 320},
		{"keep", jpeg(), 450},
		{"webp", jpeg("Cache-Control", "public, no-transform"), 0},
		{"webp", jpeg("Content-Range", "bytes 0-9/100"), 0},
		{"page", jpeg(), 0}, // the profile does nothing to images
	} {
		resp := tc.resp
		orig := resp.Header.Clone()
		e := tr.Early(decide(tc.profile), req, resp)
		if tc.height == 0 {
			if e != nil {
				t.Errorf("%s %v: committed early", tc.profile, resp.Header)
			}
			continue
		}
		if e == nil {
			t.Fatalf("%s: not committed early", tc.profile)
		}
		h := e.Header
		if h.Get("Content-Type") != "image/jpeg" || h.Get("Content-Length") != "" || h.Get("Digest") != "" ||
			!strings.HasPrefix(h.Get("ETag"), `W/"ea-`) || h.Get("X-Adapted") != "" {
			t.Errorf("%s: header %v", tc.profile, h)
		}
		if again := tr.Early(decide(tc.profile), req, resp); again.Header.Get("ETag") != h.Get("ETag") {
			t.Errorf("%s: ETag not stable: %q, %q", tc.profile, h.Get("ETag"), again.Header.Get("ETag"))
		}
		if !reflect.DeepEqual(resp.Header, orig) {
			t.Errorf("%s: Early modified the response header: %v", tc.profile, resp.Header)
		}
		out, err := e.Transcode(context.Background(), photo)
		if err != nil {
			t.Fatalf("%s: %v", tc.profile, err)
		}
		info, err := image.Probe(out)
		if err != nil || info.Format != image.JPEG || info.Height != tc.height || len(out) >= len(photo) {
			t.Errorf("%s: %+v (%v), %d bytes from %d", tc.profile, info, err, len(out), len(photo))
		}
		if _, err := e.Transcode(context.Background(), []byte("not a jpeg")); !errors.Is(err, transcode.ErrPass) {
			t.Errorf("%s, corrupt body: %v, want a pass", tc.profile, err)
		}
	}
	if e := tr.Early(decide("keep"), req, jpeg("Etag", "")); e == nil || e.Header.Get("ETag") != "" {
		t.Errorf("no original ETag: early header %v, want none", e)
	}
	if e1, e2 := tr.Early(decide("keep"), req, jpeg()), tr.Early(decide("webp"), req, jpeg()); e1.Header.Get("ETag") == e2.Header.Get("ETag") {
		t.Errorf("two profiles, one ETag %q", e1.Header.Get("ETag"))
	}
}

// TestEarlyHTML commits early to a gzip-encoded page: the minified page
// comes back gzip-encoded, as the header sent before it said.
func TestEarlyHTML(t *testing.T) {
	p := loadProfiles(t)
	page := testenv.ReadCorpus(t, "html", "sample_wikipedia.html")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(page)
	zw.Close()
	resp := &http.Response{StatusCode: 200, ContentLength: -1, Header: http.Header{
		"Content-Type": {"text/html; charset=utf-8"}, "Content-Encoding": {"gzip"}, "Etag": {`"w1"`}}}
	req := &http.Request{Header: http.Header{"Accept-Encoding": {"br, gzip"}}}
	tr := &Transcoder{}
	e := tr.Early(&policy.Decision{Action: policy.Transcode, Profile: p.Profile("page")}, req, resp)
	if e == nil {
		t.Fatal("not committed early")
	}
	if e.Header.Get("Content-Encoding") != "gzip" || e.Header.Get("X-Adapted") != "" {
		t.Errorf("header %v", e.Header)
	}
	out, err := e.Transcode(context.Background(), gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || len(plain) == 0 || len(plain) >= len(page) || len(out) >= gz.Len() {
		t.Errorf("minified page: %d bytes (%d gzipped), from %d (%d gzipped), %v", len(plain), len(out), len(page), gz.Len(), err)
	}
}

// TestEarlyCoding: Early announces gzip for an identity-coded text body
// whose profile compresses, to a client that accepts gzip, with Vary and
// a weak ETag that differs from the uncoded variant's; otherwise it keeps
// the origin's coding (or does not commit at all).
func TestEarlyCoding(t *testing.T) {
	p, err := policy.Parse("profiles.toml", []byte(`
[profiles.both.html]
minify = true
[profiles.both.compression]
encoding = "gzip"

[profiles.gz.compression]
encoding = "gzip"

[profiles.min.html]
minify = true
`))
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transcoder{}
	for _, tc := range []struct {
		name, profile, ctype, origCE, ae, cc string
		want                                 string // Content-Encoding; "-": not committed
	}{
		{"html gzip", "both", "text/html", "", "gzip, br", "", "gzip"},
		{"css compress only", "gz", "text/css", "", "gzip", "", "gzip"},
		{"json compress only", "gz", "application/json", "", "gzip", "", "gzip"},
		{"no Accept-Encoding", "both", "text/html", "", "", "", ""},
		{"br only", "both", "text/html", "", "br", "", ""},
		{"gzip refused", "both", "text/html", "", "gzip;q=0, *", "", ""},
		{"origin gzip", "both", "text/html", "gzip", "gzip", "", "gzip"},
		{"origin br", "both", "text/html", "br", "gzip", "", "br"},
		{"no compression in profile", "min", "text/html", "", "gzip", "", ""},
		{"compress only, nothing acceptable", "gz", "text/css", "", "", "", "-"},
		{"no-transform", "both", "text/html", "", "gzip", "no-transform", "-"},
		{"image", "gz", "image/jpeg", "", "gzip", "", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tc.ctype}, "Etag": {`"o1"`}}
			if tc.origCE != "" {
				h.Set("Content-Encoding", tc.origCE)
			}
			if tc.cc != "" {
				h.Set("Cache-Control", tc.cc)
			}
			resp := &http.Response{StatusCode: 200, Header: h, ContentLength: -1}
			req := &http.Request{Header: http.Header{}}
			if tc.ae != "" {
				req.Header.Set("Accept-Encoding", tc.ae)
			}
			d := &policy.Decision{Action: policy.Transcode, Profile: p.Profile(tc.profile)}
			e := tr.Early(d, req, resp)
			if tc.want == "-" {
				if e != nil {
					t.Fatalf("committed early: %v", e.Header)
				}
				return
			}
			if e == nil {
				t.Fatal("not committed early")
			}
			eh := e.Header
			if got := eh.Get("Content-Encoding"); got != tc.want {
				t.Errorf("Content-Encoding %q, want %q", got, tc.want)
			}
			coded := tc.want != "" && tc.origCE == ""
			if strings.Contains(eh.Get("Vary"), "Accept-Encoding") != coded || strings.Contains(eh.Get("X-Adapted"), "early "+tc.want) != coded {
				t.Errorf("Vary %q, X-Adapted %q (coding added: %v)", eh.Get("Vary"), eh.Get("X-Adapted"), coded)
			}
			if et := eh.Get("ETag"); !strings.HasPrefix(et, `W/"ea-`) {
				t.Errorf("ETag %q", et)
			}
			if coded {
				plain := tr.Early(d, &http.Request{Header: http.Header{}}, resp)
				if plain != nil && plain.Header.Get("ETag") == eh.Get("ETag") {
					t.Errorf("coded and uncoded variants share ETag %q", eh.Get("ETag"))
				}
			}
		})
	}
}
