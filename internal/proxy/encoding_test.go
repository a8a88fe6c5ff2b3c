package proxy_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/html"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// codedObject is what a codingOrigin serves at a path: Body, sent with
// Content-Encoding: Encoding whatever the request accepts (like a
// gzip_static origin that trusts its proxy); Page is Body decoded.
type codedObject struct {
	Body, Page []byte
	Encoding   string
}

// codingOrigin serves HTML objects by path on loopback and records the
// Accept-Encoding of the last request it saw.
type codingOrigin struct {
	*httptest.Server
	mu sync.Mutex
	ae []string // the last request's Accept-Encoding values
}

func newCodingOrigin(t *testing.T, objs map[string]codedObject) *codingOrigin {
	t.Helper()
	o := &codingOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.ae = r.Header.Values("Accept-Encoding")
		o.mu.Unlock()
		obj, ok := objs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if obj.Encoding != "" {
			w.Header().Set("Content-Encoding", obj.Encoding)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(obj.Body)))
		w.Write(obj.Body)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *codingOrigin) acceptEncoding() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ae
}

// TestProxyContentEncoding checks that proxy mode negotiates codings as
// Squid mode does: the client's Accept-Encoding reaches the policy and
// the origin, slow clients that accept gzip get gzipped adapted pages,
// fast ones the origin's bytes, and a client that accepts no coding
// never gets one.
func TestProxyContentEncoding(t *testing.T) {
	// The blog post (21 KB) is transcoded whole; the BBC page (115 KB)
	// is over icapservice.DefaultEarlyCommitBytes: its header is sent
	// before the body is read, so it keeps the origin's coding, in proxy
	// mode as behind Squid.
	dir := testenv.Corpus(t, "html")
	page, err := os.ReadFile(filepath.Join(dir, "sample_blogpost.html"))
	if err != nil {
		t.Fatal(err)
	}
	big, err := os.ReadFile(filepath.Join(dir, "sample_bbc.html"))
	if err != nil {
		t.Fatal(err)
	}
	// 16 MiB of HTML in 16 KB: decoding it would pass the transcoder's
	// ratio limit, so the original is sent.
	bomb := append([]byte("<!DOCTYPE html><title>bomb</title><p>"), make([]byte, 16<<20)...)
	objs := map[string]codedObject{
		"/plain.html": {Body: page, Page: page},
		"/gzip.html":  {Body: testenv.Gzip(t, page), Page: page, Encoding: "gzip"},
		"/big.html":   {Body: big, Page: big},
		"/bomb.html":  {Body: testenv.Gzip(t, bomb), Page: bomb, Encoding: "gzip"},
	}
	origin := newCodingOrigin(t, objs)
	// The client sends Accept-Encoding exactly as the test says and
	// hands back the body as it came over the wire.
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(startProxy(t)), DisableCompression: true}}

	const (
		identity = iota // the origin's page, not encoded
		original        // the origin's bytes, untouched
		adapted         // an adapted (smaller) page
	)
	tests := []struct {
		name     string
		path     string
		hdr      http.Header
		want     int
		encoding string // the Content-Encoding the client must get
	}{
		{"slow, gzip accepted", "/plain.html", http.Header{"Accept-Encoding": {"gzip"}, "Save-Data": {"on"}}, adapted, "gzip"},
		{"slow, gzip accepted, origin gzip", "/gzip.html", http.Header{"Accept-Encoding": {"gzip, deflate"}, "Save-Data": {"on"}}, adapted, "gzip"},
		{"slow, no Accept-Encoding", "/plain.html", http.Header{"Save-Data": {"on"}}, adapted, ""},
		{"slow, no Accept-Encoding, origin gzip", "/gzip.html", http.Header{"Save-Data": {"on"}}, adapted, ""},
		{"unknown, gzip accepted, origin gzip", "/gzip.html", http.Header{"Accept-Encoding": {"gzip"}}, original, "gzip"},
		{"fast, gzip accepted, origin gzip", "/gzip.html", http.Header{"Accept-Encoding": {"gzip"}, "Downlink": {"50"}}, original, "gzip"},
		{"unknown, gzip accepted, origin identity", "/plain.html", http.Header{"Accept-Encoding": {"gzip"}}, identity, ""},
		{"unknown, no Accept-Encoding", "/plain.html", nil, identity, ""},
		{"unknown, no Accept-Encoding, origin gzip", "/gzip.html", nil, identity, ""},
		{"unknown, identity only, origin identity", "/plain.html", http.Header{"Accept-Encoding": {"identity"}}, identity, ""},
		{"slow, gzip accepted, origin gzip bomb", "/bomb.html", http.Header{"Accept-Encoding": {"gzip"}, "Save-Data": {"on"}}, original, "gzip"},
		{"slow, gzip accepted, big page committed early", "/big.html", http.Header{"Accept-Encoding": {"gzip"}, "Save-Data": {"on"}}, adapted, "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := objs[tt.path]
			page := obj.Page
			resp, body := get(t, c, origin.URL+tt.path, tt.hdr)
			if got := resp.Header.Get("Content-Encoding"); got != tt.encoding {
				t.Fatalf("Content-Encoding %q, want %q (X-Adapted %q)", got, tt.encoding, resp.Header.Get("X-Adapted"))
			}
			if resp.ContentLength >= 0 && resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			if ae := tt.hdr.Values("Accept-Encoding"); ae != nil {
				if got := origin.acceptEncoding(); strings.Join(got, ",") != strings.Join(ae, ",") {
					t.Errorf("origin got Accept-Encoding %q, want the client's %q", got, ae)
				}
			}
			switch tt.want {
			case original:
				if !bytes.Equal(body, obj.Body) {
					t.Fatalf("body is %d bytes, not the origin's %d bytes; X-Adapted %q", len(body), len(obj.Body), resp.Header.Get("X-Adapted"))
				}
				return
			case identity:
				if !bytes.Equal(body, page) {
					t.Fatalf("body is %d bytes, not the origin's %d-byte page; X-Adapted %q", len(body), len(page), resp.Header.Get("X-Adapted"))
				}
				return
			}
			if resp.Header.Get("X-Adapted") == "" {
				t.Errorf("no X-Adapted header; header %v", resp.Header)
			}
			t.Logf("%d bytes on the wire, %q, for a %d-byte page", len(body), resp.Header.Get("X-Adapted"), len(page))
			if tt.encoding == "gzip" {
				if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
					t.Errorf("gzipped adaptation without Vary: Accept-Encoding: %q", resp.Header.Get("Vary"))
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("Content-Encoding gzip, but: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			if len(body) >= len(page) {
				t.Errorf("adapted page is %d bytes decoded, original %d", len(body), len(page))
			}
			if got, want := title(t, body), title(t, page); got != want || got == "" {
				t.Errorf("adapted page's title %q, want %q", got, want)
			}
		})
	}
}

// title parses b as HTML, failing the test if it is not, and returns the
// text of its <title>.
func title(t *testing.T, b []byte) string {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not HTML: %v", err)
	}
	var walk func(*html.Node) string
	walk = func(n *html.Node) string {
		if n.Type == html.ElementNode && n.Data == "title" && n.FirstChild != nil {
			return strings.TrimSpace(n.FirstChild.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if s := walk(c); s != "" {
				return s
			}
		}
		return ""
	}
	return walk(doc)
}
