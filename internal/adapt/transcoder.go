package adapt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// Transcoder implements policy.Transcoder with package transcode. The
// zero value uses a zero transcode.Transcoder: the build's default image
// engine and transcode's default limits. Safe for concurrent use.
//
// policy.Transcoder returns only a body and a content type, so on its own
// the ICAP answer of a transcoded response lacks the header transcode
// computed. Wrap the policy's ICAP handler with Wrap to send it: then the
// response carries the new body's Content-Length, Content-Type and
// Content-Encoding, a strong ETag derived from the original's and the
// profile, the Vary of the decision and of the transcode, and X-Adapted.
type Transcoder struct {
	// T runs the transcodes (its limits and engine apply); nil means a
	// zero transcode.Transcoder made on first use.
	T *transcode.Transcoder

	once sync.Once
}

func (t *Transcoder) tr() *transcode.Transcoder {
	t.once.Do(func() {
		if t.T == nil {
			t.T = &transcode.Transcoder{}
		}
	})
	return t.T
}

// Stats returns the counters of the underlying transcode.Transcoder.
func (t *Transcoder) Stats() transcode.Stats { return t.tr().Stats() }

// ErrNoProfile is returned for a Transcode decision without a profile.
var ErrNoProfile = errors.New("adapt: transcode decision without a profile")

// Transcode implements policy.Transcoder: it transforms body (of media
// type contentType) with the decision's profile. Any error, including a
// *transcode.PassError saying why the original must be kept (not
// smaller, too many pixels, no-transform...), means the caller passes the
// original unchanged.
func (t *Transcoder) Transcode(ctx context.Context, d *policy.Decision, contentType string, body io.Reader) (io.Reader, string, error) {
	if d.Profile == nil {
		return nil, "", ErrNoProfile
	}
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	in := transcode.Input{Body: body, Header: http.Header{}}
	if ex != nil && ex.resp != nil {
		in.Header = ex.resp.Header.Clone()
	}
	if in.Header.Get("Content-Type") == "" {
		in.Header.Set("Content-Type", contentType)
	}
	if ex != nil && ex.req != nil {
		in.Accept = ex.req.Header.Get("Accept")
		in.AcceptEncoding = ex.req.Header.Get("Accept-Encoding")
	}
	prof := Profile(d.Profile, contentType)
	if c := d.Profile.Compression; prof.Compress && c.MinBytes > 0 {
		// min_bytes: a body this small is not worth compressing. The
		// body must be read to know; it is held anyway.
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, "", fmt.Errorf("adapt: read body: %w", err)
		}
		in.Body, in.Bytes = nil, b
		if int64(len(b)) < c.MinBytes {
			prof.Compress, prof.Encodings = false, nil
		}
	}
	out, err := t.tr().Transcode(ctx, in, prof)
	if err != nil {
		return nil, "", fmt.Errorf("adapt: profile %q: %w", d.Profile.Name, err)
	}
	if ex != nil {
		ex.set(out)
	}
	return bytes.NewReader(out.Body), out.Header.Get("Content-Type"), nil
}

// Profile maps the policy profile p to the transcode.Profile for a body
// of media type mediaType ("image/png", no parameters):
//
//   - [image] applies to JPEG, PNG, GIF and WebP: max_width, max_height,
//     quality, greyscale and strip carry over; format "keep" keeps the
//     source format, "webp" asks for WebP where the request's Accept
//     allows it (transcode checks) and the source format otherwise,
//     "jpeg" and "png" ask for that format (transcode still keeps
//     transparency out of JPEG and line art lossless); gif "keep" keeps
//     animations, "first-frame" keeps the first frame, "skip" passes them;
//   - [html] applies to HTML pages only: minify and placeholders;
//   - [compression] applies to its types: the body is re-encoded with its
//     encoding if the client accepts it. level is not used: transcode
//     compresses at its own fixed level.
func Profile(p *policy.Profile, mediaType string) transcode.Profile {
	tp := transcode.Profile{Name: p.Name}
	if im := p.Image; im != nil {
		if src, err := image.ParseFormat(mediaType); err == nil {
			tp.MaxWidth, tp.MaxHeight, tp.Quality = im.MaxWidth, im.MaxHeight, im.Quality
			tp.Greyscale, tp.StripMetadata = im.Greyscale, im.Strip
			switch im.Format {
			case "webp":
				tp.Formats = []image.Format{image.WebP, src}
			case "jpeg":
				tp.Formats = []image.Format{image.JPEG}
			case "png":
				tp.Formats = []image.Format{image.PNG}
			default: // keep
				tp.Formats = []image.Format{src}
			}
			switch im.GIF {
			case "first-frame":
				tp.Animation = image.AnimationFirstFrame
			case "skip":
				tp.Animation = image.AnimationPass
			default: // keep
				tp.Animation = image.AnimationKeep
			}
		}
	}
	if h := p.HTML; h != nil && (mediaType == "text/html" || mediaType == "application/xhtml+xml") {
		tp.Minify, tp.Placeholders = h.Minify, h.Placeholders
	}
	if c := p.Compression; c != nil {
		for _, pat := range c.Types {
			if mediaMatch(pat, mediaType) {
				tp.Compress, tp.Encodings = true, []string{c.Encoding}
				break
			}
		}
	}
	return tp
}

// mediaMatch matches a media type against "type/subtype", "type/*" or
// "*/*" (patterns as the policy validated them).
func mediaMatch(pat, t string) bool {
	switch {
	case pat == "*/*":
		return t != ""
	case strings.HasSuffix(pat, "/*"):
		return strings.HasPrefix(t, pat[:len(pat)-1]) && len(t) > len(pat)-1
	}
	return pat == t
}

// MediaType returns the media type of a Content-Type value, lower case
// and without parameters ("" if there is none).
func MediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// exchange is one RESPMOD transaction seen by Wrap: the encapsulated
// messages the transcode reads, and its output, which the response
// writer puts into the ICAP answer.
type exchange struct {
	req  *http.Request
	resp *http.Response

	mu  sync.Mutex
	out *transcode.Output
}

type exchangeKey struct{}

func (ex *exchange) set(out *transcode.Output) {
	ex.mu.Lock()
	ex.out = out
	ex.mu.Unlock()
}

func (ex *exchange) output() *transcode.Output {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.out
}

// Wrap returns next (the policy's ICAP handler, filters/icapservice)
// wrapped so that a RESPMOD it answers with a body transcoded by t
// carries the header of the transcode's output: Content-Length of the
// new body, Content-Type, Content-Encoding, the strong ETag transcode
// derived (replacing the weak one the handler made), X-Adapted, and Vary
// merged from the decision's and the transcode's. Other transactions go
// to next untouched.
func (t *Transcoder) Wrap(next icap.Handler) icap.Handler {
	return icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
		if r.Method != icap.MethodRESPMOD || r.Response == nil {
			next.ServeICAP(w, r)
			return
		}
		ex := &exchange{req: r.Request, resp: r.Response}
		next.ServeICAP(&headerWriter{ResponseWriter: w, ex: ex}, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
	})
}

// headerWriter fixes the header of the transcoded response as it is
// written.
type headerWriter struct {
	icap.ResponseWriter
	ex *exchange
}

func (w *headerWriter) WriteHeader(code int, msg any, hasBody bool) {
	if resp, ok := msg.(*http.Response); ok && resp == w.ex.resp && code == icap.StatusOK {
		if out := w.ex.output(); out != nil && out.Adapted {
			SetHeader(resp, out)
		}
	}
	w.ResponseWriter.WriteHeader(code, msg, hasBody)
}

// SetHeader gives resp, whose body is being replaced by out.Body, the
// header fields that describe out: those transcode set, and Vary merged
// with what resp already lists. Other fields of resp (the policy's
// header edits) are kept.
func SetHeader(resp *http.Response, out *transcode.Output) {
	h := resp.Header
	for _, k := range []string{"Content-Type", "Content-Encoding", "ETag", "X-Adapted",
		"Content-Md5", "Digest", "Repr-Digest", "Content-Digest", "Content-Range"} {
		if v := out.Header.Values(k); len(v) > 0 {
			h[http.CanonicalHeaderKey(k)] = v
		} else {
			h.Del(k)
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(out.Body)))
	resp.ContentLength = int64(len(out.Body))
	var vary []string
	for _, v := range out.Header.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				vary = append(vary, n)
			}
		}
	}
	policy.AddVary(h, vary)
}

var _ policy.Transcoder = (*Transcoder)(nil)
