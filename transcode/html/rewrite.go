package html

import (
	"bytes"
	"errors"
	"fmt"
	stdhtml "html"
	"io"
	"strings"

	xhtml "golang.org/x/net/html"
)

// DefaultMaxTokenBytes bounds one token (a tag with its attributes, or a
// run of text) held by Rewrite. Longer tokens end the rewrite with an error
// so that the caller passes the original.
const DefaultMaxTokenBytes = 1 << 20

// RewriteOptions selects what Rewrite changes. The zero value changes
// nothing and copies the input.
type RewriteOptions struct {
	// Placeholders replaces every <img> (and <source> inside <picture>)
	// by a short link to the image, labelled with its alt text.
	Placeholders bool
	// DropHints removes <link rel=prefetch|preload|prerender|modulepreload>
	// resource hints, which make a slow client fetch what it may never use.
	DropHints bool
	// MaxTokenBytes bounds one token (DefaultMaxTokenBytes when zero).
	MaxTokenBytes int
}

// RewriteStats counts what Rewrite changed.
type RewriteStats struct {
	Images  int // <img> replaced by placeholders
	Sources int // <source> in <picture> dropped
	Hints   int // resource hints dropped
}

// ErrTokenTooLong is returned when a token exceeds MaxTokenBytes.
var ErrTokenTooLong = errors.New("html: token too long")

// Rewrite copies the HTML document r to w, replacing images by placeholders
// and dropping resource hints as opts says. It streams: only the current
// token is held. Every other token is copied byte for byte, so markup that
// does not parse (unbalanced tags, stray '<') passes through unchanged.
// On error w may hold a partial document; callers that must not send it
// write to a buffer and fall back to the original.
func Rewrite(w io.Writer, r io.Reader, opts RewriteOptions) (RewriteStats, error) {
	var st RewriteStats
	max := opts.MaxTokenBytes
	if max <= 0 {
		max = DefaultMaxTokenBytes
	}
	z := xhtml.NewTokenizer(r)
	z.SetMaxBuf(max)
	anchors := 0  // depth of open <a>: a placeholder there must not be a link
	pictures := 0 // depth of open <picture>
	var ph bytes.Buffer
	var tag []byte // copy of a tag's raw bytes: TagName and TagAttr lower-case the tokenizer's buffer in place
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			err := z.Err()
			if err == io.EOF {
				// An unterminated tag or comment at the end of the input is
				// returned with the error token: pass it through as is.
				_, werr := w.Write(z.Raw())
				return st, werr
			}
			if errors.Is(err, xhtml.ErrBufferExceeded) {
				return st, fmt.Errorf("%w (over %d bytes)", ErrTokenTooLong, max)
			}
			return st, fmt.Errorf("read html: %w", err)
		}
		raw := z.Raw()
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken, xhtml.EndTagToken:
			tag = append(tag[:0], raw...)
			raw = tag
			name, hasAttr := z.TagName()
			switch string(name) {
			case "a":
				anchors += depthDelta(tt)
			case "picture":
				pictures += depthDelta(tt)
			case "img":
				if opts.Placeholders && tt != xhtml.EndTagToken {
					attrs := attrMap(z, hasAttr)
					ph.Reset()
					placeholder(&ph, attrs, anchors > 0)
					raw = ph.Bytes()
					st.Images++
				}
			case "source":
				if opts.Placeholders && pictures > 0 && tt != xhtml.EndTagToken {
					raw = nil
					st.Sources++
				}
			case "link":
				if opts.DropHints && tt != xhtml.EndTagToken {
					if isHint(attrMap(z, hasAttr)["rel"]) {
						raw = nil
						st.Hints++
					}
				}
			}
		}
		if len(raw) > 0 {
			if _, err := w.Write(raw); err != nil {
				return st, err
			}
		}
	}
}

func depthDelta(tt xhtml.TokenType) int {
	switch tt {
	case xhtml.StartTagToken:
		return 1
	case xhtml.EndTagToken:
		return -1
	}
	return 0
}

func attrMap(z *xhtml.Tokenizer, more bool) map[string]string {
	m := make(map[string]string)
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		if _, dup := m[string(k)]; !dup { // the first of duplicate attributes wins, as in browsers
			m[string(k)] = string(v)
		}
	}
	return m
}

func isHint(rel string) bool {
	for _, r := range strings.Fields(strings.ToLower(rel)) {
		switch r {
		case "prefetch", "preload", "prerender", "modulepreload":
			return true
		}
	}
	return false
}

// placeholder writes the light stand-in for an image: its alt text (or
// "image") in brackets, linking to the image unless already inside a link.
func placeholder(b *bytes.Buffer, attrs map[string]string, inLink bool) {
	label := strings.TrimSpace(attrs["alt"])
	if label == "" {
		label = "image"
	}
	src := attrs["src"]
	if src == "" {
		src = firstSrcset(attrs["srcset"])
	}
	if src == "" || inLink || strings.HasPrefix(strings.ToLower(strings.TrimSpace(src)), "javascript:") {
		fmt.Fprintf(b, `<span class="ea-img">[%s]</span>`, stdhtml.EscapeString(label))
		return
	}
	fmt.Fprintf(b, `<a class="ea-img" href="%s">[%s]</a>`, stdhtml.EscapeString(src), stdhtml.EscapeString(label))
}

// firstSrcset returns the URL of the first candidate in a srcset value.
func firstSrcset(s string) string {
	first, _, _ := strings.Cut(s, ",")
	f := strings.Fields(first)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
