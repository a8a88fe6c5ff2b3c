package html

import (
	"errors"
	"io"
	"mime"
	"regexp"
	"strings"

	"github.com/tdewolff/minify/v2"
	"github.com/tdewolff/minify/v2/css"
	mhtml "github.com/tdewolff/minify/v2/html"
	"github.com/tdewolff/minify/v2/js"
	"github.com/tdewolff/minify/v2/json"
	"github.com/tdewolff/minify/v2/svg"
)

// ErrNotMinifiable is returned for a media type the minifier does not
// handle; the caller passes the body unchanged.
var ErrNotMinifiable = errors.New("html: media type not minifiable")

var minifier = newMinifier()

func newMinifier() *minify.M {
	m := minify.New()
	// Keep <html>, <head> and <body>: some scripts and CSS selectors look
	// for them, and saving three tags is not worth breaking a page.
	m.Add("text/html", &mhtml.Minifier{KeepDocumentTags: true, KeepSpecialComments: true})
	m.AddFunc("text/css", css.Minify)
	m.AddRegexp(regexp.MustCompile(`^(application|text)/(x-)?(java|ecma)script$`), &js.Minifier{})
	m.AddFunc("image/svg+xml", svg.Minify)
	m.AddRegexp(regexp.MustCompile(`^application/([a-z0-9.-]+\+)?json$`), &json.Minifier{})
	return m
}

// MediaType returns the lower-cased media type of a Content-Type value
// without parameters ("" when it does not parse).
func MediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// Minifiable reports whether Minify handles the Content-Type value.
func Minifiable(contentType string) bool {
	switch mt := MediaType(contentType); {
	case mt == "text/html", mt == "text/css", mt == "image/svg+xml":
		return true
	case strings.HasSuffix(mt, "javascript"), strings.HasSuffix(mt, "ecmascript"):
		return true
	case mt == "application/json", strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		return true
	}
	return false
}

// Minify returns a minified copy of src, which has the given Content-Type.
// src is never modified. On error the result is nil and the caller should
// use src.
func Minify(contentType string, src []byte) ([]byte, error) {
	if !Minifiable(contentType) {
		return nil, ErrNotMinifiable
	}
	// One spare byte of capacity: the parser appends a NUL sentinel.
	work := make([]byte, len(src), len(src)+1)
	copy(work, src)
	out, err := minifier.Bytes(MediaType(contentType), work)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MinifyReader minifies r into w. r is read to the end into a private
// buffer first (the minifiers need the whole document); a reader that
// exposes its buffer (Bytes() []byte, as *bytes.Buffer does) is not handed
// to the minifier, so the caller's buffer stays intact.
func MinifyReader(w io.Writer, contentType string, r io.Reader) error {
	if !Minifiable(contentType) {
		return ErrNotMinifiable
	}
	return minifier.Minify(MediaType(contentType), w, struct{ io.Reader }{r})
}
