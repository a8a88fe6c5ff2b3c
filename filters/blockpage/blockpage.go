// Package blockpage renders the HTML page a blocked client sees, from an
// html/template, and wraps it in an HTTP response.
//
// The default template shows the status, the reason and the name of the
// policy rule that blocked the request, so a user can quote it to the
// administrator. All data is escaped by html/template.
package blockpage

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/edgeadapt/edgeadapt/filters"
)

// DefaultMaxBytes caps a rendered page when Page.MaxBytes is zero.
const DefaultMaxBytes = 64 << 10

// DefaultStatus is the status of a block page when the rule names none.
const DefaultStatus = http.StatusForbidden

//go:embed default.html
var defaultTemplate string

// Page is the block-page filter. The zero value, after Validate, renders
// the built-in template.
type Page struct {
	// TemplateFile is an html/template file to use instead of the built-in
	// page. It is read once, by Validate.
	TemplateFile string `toml:"template_file"`
	// MaxBytes caps the rendered page; a larger page is an error at render
	// time. Zero means DefaultMaxBytes.
	MaxBytes int `toml:"max_bytes"`

	tmpl *template.Template
}

// Data is what a template sees.
type Data struct {
	Status     int    // HTTP status sent, e.g. 403
	StatusText string // its reason phrase, e.g. "Forbidden"
	Reason     string // the rule's reason, for people
	Rule       string // the name of the rule that blocked
	URL        string // the blocked URL
	Host       string // its host
	ClientIP   string // the client's address, when known
}

// Validate parses the template (and reads TemplateFile) and checks limits.
func (p *Page) Validate() error {
	if p.MaxBytes < 0 {
		return fmt.Errorf("blockpage: max_bytes must be >= 0, got %d", p.MaxBytes)
	}
	src, name := defaultTemplate, "default.html"
	if p.TemplateFile != "" {
		b, err := os.ReadFile(p.TemplateFile)
		if err != nil {
			return fmt.Errorf("blockpage: template_file: %w", err)
		}
		src, name = string(b), p.TemplateFile
	}
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return fmt.Errorf("blockpage: template_file: %w", err)
	}
	// Render once with sample data so field typos fail at load time, not
	// on the first blocked request.
	if err := t.Execute(io.Discard, Data{Status: DefaultStatus, StatusText: "Forbidden"}); err != nil {
		return fmt.Errorf("blockpage: template_file: %w", err)
	}
	p.tmpl = t
	return nil
}

func (p *Page) maxBytes() int {
	if p.MaxBytes == 0 {
		return DefaultMaxBytes
	}
	return p.MaxBytes
}

// Render writes the page for d. A zero d.Status becomes DefaultStatus and
// an empty StatusText is filled from it.
func (p *Page) Render(d Data) ([]byte, error) {
	if p.tmpl == nil {
		return nil, fmt.Errorf("blockpage: Render before Validate")
	}
	if d.Status == 0 {
		d.Status = DefaultStatus
	}
	if d.StatusText == "" {
		d.StatusText = http.StatusText(d.Status)
	}
	var buf bytes.Buffer
	if err := p.tmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("blockpage: render: %w", err)
	}
	if buf.Len() > p.maxBytes() {
		return nil, fmt.Errorf("blockpage: rendered page is %d bytes, over max_bytes %d", buf.Len(), p.maxBytes())
	}
	return buf.Bytes(), nil
}

// Response renders the page for d and returns it as a complete HTTP
// response to req (which may be nil), ready to be encapsulated. The
// response is never cached by shared caches.
func (p *Page) Response(req *http.Request, d Data) (*http.Response, error) {
	body, err := p.Render(d)
	if err != nil {
		return nil, err
	}
	if d.Status == 0 {
		d.Status = DefaultStatus
	}
	h := make(http.Header, 4)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", d.Status, http.StatusText(d.Status)),
		StatusCode:    d.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

var _ filters.Validator = (*Page)(nil)
