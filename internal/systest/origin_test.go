package systest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// object is a response the mix origin serves at one path.
type object struct {
	contentType string
	header      map[string]string // more response headers
	body        []byte
	pass        bool // the policy leaves it alone for every client of the mix
}

// mixOrigin serves the objects of the load and failover tests on
// 127.0.0.1: pass-through objects the repository's policy never changes
// (no-transform text, binary types no rule names, images for clients of
// unknown speed) and objects it adapts for a Save-Data client (corpus
// photos and HTML).
type mixOrigin struct {
	srv     *httptest.Server
	objects map[string]*object
}

// Paths of the mix origin.
const (
	pathText   = "/pass/text.txt" // text/plain, Cache-Control: no-transform
	pathSmall  = "/pass/small.txt"
	pathBinary = "/pass/data.bin" // application/octet-stream
	pathJPEG   = "/img/flowers.jpeg"
	pathPNG    = "/img/photo.png"
	pathHTML   = "/html/blog.html"
)

func newMixOrigin(t testing.TB) *mixOrigin {
	t.Helper()
	images := testenv.Corpus(t, "images")
	html := testenv.Corpus(t, "html")
	read := func(dir, name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	text := func(n int64) []byte {
		b, _ := io.ReadAll(squidtest.Body(n))
		return b
	}
	noTransform := map[string]string{"Cache-Control": "no-transform"}
	o := &mixOrigin{objects: map[string]*object{
		pathText:   {contentType: "text/plain", header: noTransform, body: text(64 << 10), pass: true},
		pathSmall:  {contentType: "text/plain; charset=utf-8", header: noTransform, body: text(2 << 10), pass: true},
		pathBinary: {contentType: "application/octet-stream", body: text(256 << 10), pass: true},
		pathJPEG:   {contentType: "image/jpeg", body: read(images, "sharp__flowers.jpeg")},                           // 85 KB, 1920x1080
		pathPNG:    {contentType: "image/png", body: read(images, "thumbor__Giunchedi_Filippo_January_2015_01.png")}, // 447 KB, 800x533
		pathHTML:   {contentType: "text/html; charset=utf-8", body: read(html, "sample_blogpost.html")},              // 20 KB
	}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj, ok := o.objects[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", obj.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(obj.body)))
		for k, v := range obj.header {
			w.Header().Set(k, v)
		}
		w.Write(obj.body)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// URL of path on the origin.
func (o *mixOrigin) URL(path string) string { return o.srv.URL + path }

// digest of the object at path.
func (o *mixOrigin) digest(path string) [32]byte { return sha256.Sum256(o.objects[path].body) }

// loadMix is the rotation of the load and failover tests: seven of ten
// requests are answered unchanged, three adapted for a Save-Data client.
var loadMix = []wrkMix{
	{pathText, "Save-Data: on"},
	{pathBinary, "Save-Data: on"},
	{pathJPEG, ""}, // unknown speed: no rule matches
	{pathSmall, "Save-Data: on"},
	{pathJPEG, "Save-Data: on"}, // adapted (committed early: 85 KB)
	{pathText, ""},
	{pathHTML, "Save-Data: on"}, // adapted (minified)
	{pathBinary, ""},
	{pathPNG, "Save-Data: on"}, // adapted (committed early: 447 KB)
	{pathSmall, ""},
}

// fetchResult is one request of a Go client through Squid.
type fetchResult struct {
	mix      wrkMix
	status   int
	err      error // transport error or a body that ended early
	bytes    int64
	intact   bool // the body is the origin's, byte for byte
	adapted  bool // X-Adapted in the response
	declared int64
}

// fetch gets m through client and checks the body against the origin's
// object while reading it. A body shorter than its Content-Length, or a
// chunked body without its last chunk, is an error from net/http.
func (o *mixOrigin) fetch(client *http.Client, m wrkMix) fetchResult {
	res := fetchResult{mix: m}
	req, err := http.NewRequest(http.MethodGet, o.URL(m.Path), nil)
	if err != nil {
		res.err = err
		return res
	}
	if k, v, ok := bytes.Cut([]byte(m.Header), []byte(": ")); ok {
		req.Header.Set(string(k), string(v))
	}
	resp, err := client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	res.declared = resp.ContentLength
	res.adapted = resp.Header.Get("X-Adapted") != ""
	h := sha256.New()
	res.bytes, res.err = io.Copy(h, resp.Body)
	var sum [32]byte
	h.Sum(sum[:0])
	res.intact = sum == o.digest(m.Path)
	return res
}
