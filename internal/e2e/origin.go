package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testbed"
)

// Page is a web page the origin serves at /pages/NAME.html: the corpus
// page HTML with an <img> for each of Images (corpus image files, served
// at /images/FILE) inserted before </body>.
type Page struct {
	Name   string
	HTML   string   // file in the corpus html directory
	Images []string // files in the corpus images directory
}

// Pages of the tests and the experiment.
var (
	// SmallPage keeps the CI test short: 21 KB of HTML and two images
	// of 85 KB (a JPEG photo and a line-art PNG), about 6 s at 256 kbit/s;
	// two images make the browser open two connections, two reports for
	// spand. Both are within reach of the pure Go image engine.
	SmallPage = Page{Name: "small", HTML: "sample_blogpost.html", Images: []string{
		"sharp__flowers.jpeg",
		"sharp__50020484-00001.png",
	}}
	// PhotoPage is the experiment's page: 1.6 MB of images of the usual
	// kinds (an over-quality 1920x1080 JPEG, a photo stored as PNG, a WebP,
	// an already small JPEG, a 1-bit line-art PNG) under a blog post.
	PhotoPage = Page{Name: "photos", HTML: "sample_blogpost.html", Images: []string{
		"bimg__northern_cardinal_bird.jpg",
		"thumbor__Giunchedi_Filippo_January_2015_01.png",
		"sharp__4.webp",
		"sharp__flowers.jpeg",
		"sharp__50020484-00001.png",
	}}
)

// Origin is an HTTP server on the origin host serving pages and the corpus
// images; it knows the SHA-256 of everything it serves.
type Origin struct {
	// URL is the base URL, http://ADDR.
	URL string

	files   map[string][]byte // by URL path
	digests map[string]string
}

// OriginPort is the port the origin listens on.
const OriginPort = "80"

// StartOrigin serves pages (built from htmlDir) and every image of
// imagesDir on h, port 80, until the test ends.
func StartOrigin(t testing.TB, h *testbed.Host, htmlDir, imagesDir string, pages ...Page) *Origin {
	t.Helper()
	o := &Origin{files: map[string][]byte{}, digests: map[string]string{}}
	imgs, err := os.ReadDir(imagesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range imgs {
		if e.IsDir() || path.Ext(e.Name()) == ".md" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(imagesDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		o.add("/images/"+e.Name(), b)
	}
	for _, p := range pages {
		b, err := os.ReadFile(filepath.Join(htmlDir, p.HTML))
		if err != nil {
			t.Fatal(err)
		}
		var imgs strings.Builder
		imgs.WriteString("<div class=\"photos\">\n")
		for _, im := range p.Images {
			if _, ok := o.files["/images/"+im]; !ok {
				t.Fatalf("page %s: no image %s in %s", p.Name, im, imagesDir)
			}
			fmt.Fprintf(&imgs, "<p><img src=\"/images/%s\" alt=\"%s\"></p>\n", html.EscapeString(im), html.EscapeString(im))
		}
		imgs.WriteString("</div>\n</body>")
		i := bytes.LastIndex(b, []byte("</body>"))
		if i < 0 {
			t.Fatalf("page %s: %s has no </body>", p.Name, p.HTML)
		}
		page := append(append(append([]byte{}, b[:i]...), imgs.String()...), b[i+len("</body>"):]...)
		o.add("/pages/"+p.Name+".html", page)
	}
	ln, err := h.Listen("tcp", net.JoinHostPort(h.Addr.String(), OriginPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	o.URL = "http://" + ln.Addr().String()
	return o
}

func (o *Origin) add(p string, b []byte) {
	sum := sha256.Sum256(b)
	o.files[p] = b
	o.digests[p] = hex.EncodeToString(sum[:])
}

// ServeHTTP serves the files with their type from the extension, a
// Content-Length and a strong ETag, as a static web server would.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, ok := o.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(r.URL.Path))
	if path.Ext(r.URL.Path) == ".webp" {
		ct = "image/webp" // not in every mime table
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("ETag", `"`+o.digests[r.URL.Path][:16]+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// PageURL is the address of the page named name.
func (o *Origin) PageURL(name string) string { return o.URL + "/pages/" + name + ".html" }

// Digest returns the hex SHA-256 of the body served at rawURL's path, and
// whether the origin serves it.
func (o *Origin) Digest(rawURL string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", false
	}
	d, ok := o.digests[u.Path]
	return d, ok
}

// Size returns the size of the body served at rawURL's path (0 if none).
func (o *Origin) Size(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	return len(o.files[u.Path])
}
