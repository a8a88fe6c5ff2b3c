package html

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	xhtml "golang.org/x/net/html"
)

var corpusTypes = map[string]string{
	"sample_amazon.html":    "text/html; charset=utf-8",
	"sample_bbc.html":       "text/html",
	"sample_blogpost.html":  "text/html",
	"sample_wikipedia.html": "text/html; charset=UTF-8",
	"sample_bootstrap.css":  "text/css",
	"sample_jquery.js":      "application/javascript",
	"sample_moment.js":      "text/javascript",
}

func TestMinifyCorpus(t *testing.T) {
	for name, ct := range corpusTypes {
		t.Run(name, func(t *testing.T) {
			src := testenv.ReadCorpus(t, "html", name)
			orig := bytes.Clone(src)
			out, err := Minify(ct, src)
			if err != nil {
				t.Fatalf("Minify: %v", err)
			}
			if !bytes.Equal(src, orig) {
				t.Fatal("Minify modified its input")
			}
			if len(out) >= len(src)*95/100 {
				t.Errorf("minified %d -> %d bytes, want at least 5%% smaller", len(src), len(out))
			}
			if MediaType(ct) == "text/html" {
				if _, err := xhtml.Parse(bytes.NewReader(out)); err != nil {
					t.Errorf("minified HTML does not parse: %v", err)
				}
			}
			// MinifyReader from a *bytes.Buffer (which exposes its
			// buffer) must give the same bytes and leave the buffer alone.
			buf := bytes.NewBuffer(src)
			var w bytes.Buffer
			if err := MinifyReader(&w, ct, buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(w.Bytes(), out) {
				t.Error("MinifyReader and Minify differ")
			}
			if !bytes.Equal(src, orig) {
				t.Fatal("MinifyReader modified the buffer it read")
			}
		})
	}
}

// A minifier error must leave the original intact: it is what the caller
// serves instead.
func TestMinifyErrorKeepsOriginal(t *testing.T) {
	tests := []struct{ ct, src string }{
		{"application/javascript", "var a = function( { return 1 ;;; \n\t  if (x) }}}"},
		{"application/json", `{"a": [1, 2,, }`},
		{"text/css", "a { color: red;  } }}} @media {{{"},
	}
	for _, tt := range tests {
		src := []byte(tt.src)
		orig := bytes.Clone(src)
		out, err := Minify(tt.ct, src)
		if !bytes.Equal(src, orig) {
			t.Errorf("%s: input modified: %q", tt.ct, src)
		}
		if err == nil && len(out) == 0 {
			t.Errorf("%s: no error and empty output", tt.ct)
		}
		if err == nil && tt.ct != "text/css" {
			t.Errorf("%s: want a parse error for %q, got output %q", tt.ct, tt.src, out)
		}
	}
	if _, err := Minify("image/png", []byte("x")); !errors.Is(err, ErrNotMinifiable) {
		t.Errorf("Minify(image/png) err = %v", err)
	}
}

func rewrite(t testing.TB, in string, opts RewriteOptions) (string, RewriteStats) {
	t.Helper()
	var w bytes.Buffer
	st, err := Rewrite(&w, strings.NewReader(in), opts)
	if err != nil {
		t.Fatalf("Rewrite(%q): %v", in, err)
	}
	return w.String(), st
}

func TestRewrite(t *testing.T) {
	all := RewriteOptions{Placeholders: true, DropHints: true}
	tests := []struct {
		name, in, want string
	}{
		{"img with alt", `<p>Hi <img src="/a.jpg" alt="A cat" width=800></p>`,
			`<p>Hi <a class="ea-img" href="/a.jpg">[A cat]</a></p>`},
		{"img without alt", `<IMG SRC='b.png'>`, `<a class="ea-img" href="b.png">[image]</a>`},
		{"escaping", `<img src="x.jpg?a=1&amp;b=2" alt="&lt;b&gt; &quot;q&quot;">`,
			`<a class="ea-img" href="x.jpg?a=1&amp;b=2">[&lt;b&gt; &#34;q&#34;]</a>`},
		{"inside a link", `<a href="/p"><img src="t.jpg" alt="thumb"></a>`,
			`<a href="/p"><span class="ea-img">[thumb]</span></a>`},
		{"srcset only", `<img srcset="s1.jpg 1x, s2.jpg 2x">`, `<a class="ea-img" href="s1.jpg">[image]</a>`},
		{"javascript src", `<img src="javascript:alert(1)" alt=x>`, `<span class="ea-img">[x]</span>`},
		{"picture", `<picture><source srcset="a.webp" type="image/webp"><img src="a.jpg" alt="a"></picture>`,
			`<picture><a class="ea-img" href="a.jpg">[a]</a></picture>`},
		{"source in video kept", `<video><source src="v.mp4"></video>`, `<video><source src="v.mp4"></video>`},
		{"hints", `<link rel="preload" href="a.js" as="script"><link rel=stylesheet href=s.css><link rel="dns-prefetch prefetch" href="//x">`,
			`<link rel=stylesheet href=s.css>`},
		{"img in script untouched", `<script>document.write('<img src="x">')</script>`,
			`<script>document.write('<img src="x">')</script>`},
		{"img in comment untouched", `<!-- <img src="x"> -->`, `<!-- <img src="x"> -->`},
		{"unbalanced passes", `<div><p>open <b>bold</i></div></span><img src=a.gif alt=z`, `<div><p>open <b>bold</i></div></span><img src=a.gif alt=z`},
		{"upper case kept", `<DIV CLASS=X>t</DIV>`, `<DIV CLASS=X>t</DIV>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := rewrite(t, tt.in, all); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// Rewrite without options, and Rewrite on everything but <img>, <source>
// and <link>, reproduce the input byte for byte.
func TestRewriteCorpus(t *testing.T) {
	for name, ct := range corpusTypes {
		if MediaType(ct) != "text/html" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			src := testenv.ReadCorpus(t, "html", name)
			if got, _ := rewrite(t, string(src), RewriteOptions{}); got != string(src) {
				t.Fatal("identity rewrite changed the page")
			}
			got, st := rewrite(t, string(src), RewriteOptions{Placeholders: true, DropHints: true})
			if st.Images >= 10 && len(got) >= len(src) {
				t.Errorf("rewritten %d bytes from %d", len(got), len(src))
			}
			doc, err := xhtml.Parse(strings.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			imgs := 0
			for n := range doc.Descendants() {
				if n.Type == xhtml.ElementNode && n.Data == "img" {
					imgs++
				}
			}
			if imgs != 0 {
				t.Errorf("%d <img> elements left", imgs)
			}
			if st.Images == 0 {
				t.Error("no image replaced")
			}
			t.Logf("%s: %d -> %d bytes, %+v", name, len(src), len(got), st)
		})
	}
}

func TestRewriteTokenLimit(t *testing.T) {
	in := `<p title="` + strings.Repeat("x", 5000) + `">`
	var w bytes.Buffer
	if _, err := Rewrite(&w, strings.NewReader(in), RewriteOptions{MaxTokenBytes: 1024}); !errors.Is(err, ErrTokenTooLong) {
		t.Fatalf("err = %v, want ErrTokenTooLong", err)
	}
}

func FuzzHTML(f *testing.F) {
	for _, s := range []string{
		`<p>Hi <img src="/a.jpg" alt="A cat"></p>`,
		`<picture><source srcset="a.webp"><img src=a.jpg></picture>`,
		`<a href=x><img src=y alt=z></a><link rel=preload href=q>`,
		`<div><p>open <b>bold</i></div></span><img src=a.gif alt=z`,
		`<script>var a = "<img>";</script><style>a{color:red}</style>`,
		"<!DOCTYPE html><html><head><title>t</title></head><body>\x00</body></html>",
	} {
		f.Add([]byte(s))
	}
	if dir := os.Getenv("EDGEADAPT_CORPUS_SEEDS"); dir != "" {
		b, _ := os.ReadFile(filepath.Join(dir, "sample_blogpost.html"))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		var w bytes.Buffer
		if _, err := Rewrite(&w, bytes.NewReader(in), RewriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Bytes(), in) {
			t.Fatalf("identity rewrite changed %q to %q", in, w.Bytes())
		}
		w.Reset()
		if _, err := Rewrite(&w, bytes.NewReader(in), RewriteOptions{Placeholders: true, DropHints: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := xhtml.Parse(bytes.NewReader(w.Bytes())); err != nil {
			t.Fatal(err)
		}
		_, _ = Minify("text/html", in)
		if !bytes.Equal(in, orig) {
			t.Fatal("input modified")
		}
	})
}
