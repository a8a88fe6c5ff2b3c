package adapt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// Transcoder implements policy.Transcoder with package transcode. The
// zero value uses a zero transcode.Transcoder: the build's default image
// engine and transcode's default limits. Safe for concurrent use.
//
// Besides policy.Transcoder it implements policy.ResponseTranscoder,
// which gives the ICAP service the header transcode computed, and
// policy.EarlyTranscoder, for bodies answered before they are read.
type Transcoder struct {
	// T runs the transcodes (its limits and engine apply); nil means a
	// zero transcode.Transcoder made on first use.
	T *transcode.Transcoder

	once  sync.Once
	saved savings // per media type, savings.go
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
// type contentType) with the decision's profile, knowing nothing of the
// request (so no WebP and no compression). Any error, including a
// *transcode.PassError saying why the original must be kept (not
// smaller, too many pixels, no-transform...), means the caller passes the
// original unchanged.
func (t *Transcoder) Transcode(ctx context.Context, d *policy.Decision, contentType string, body io.Reader) (io.Reader, string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, "", fmt.Errorf("adapt: read body: %w", err)
	}
	resp := &http.Response{Header: http.Header{"Content-Type": {contentType}}}
	out, h, err := t.TranscodeResponse(ctx, d, nil, resp, b)
	if err != nil {
		return nil, "", err
	}
	return bytes.NewReader(out), h.Get("Content-Type"), nil
}

// TranscodeResponse implements policy.ResponseTranscoder: it transforms
// body, the whole body of resp, with the decision's profile, for req (nil
// means a request without Accept headers). The header it returns carries
// the new body's Content-Length, Content-Type and Content-Encoding, a
// strong ETag derived from the original's and the profile, Vary merged
// with the transcode's (Accept, Accept-Encoding), and X-Adapted.
func (t *Transcoder) TranscodeResponse(ctx context.Context, d *policy.Decision, req *http.Request, resp *http.Response, body []byte) ([]byte, http.Header, error) {
	if d.Profile == nil {
		return nil, nil, ErrNoProfile
	}
	in := transcode.Input{Bytes: body, Header: resp.Header.Clone()}
	if in.Header == nil {
		in.Header = http.Header{}
	}
	if req != nil {
		in.Accept = req.Header.Get("Accept")
		in.AcceptEncoding = req.Header.Get("Accept-Encoding")
		in.CacheControl = req.Header.Get("Cache-Control")
	}
	mt := MediaType(in.Header.Get("Content-Type"))
	prof := Profile(d.Profile, mt)
	if c := d.Profile.Compression; prof.Compress && c.MinBytes > 0 && int64(len(body)) < c.MinBytes {
		// min_bytes: a body this small is not worth compressing.
		prof.Compress, prof.Encodings = false, nil
	}
	out, err := t.tr().Transcode(ctx, in, prof)
	if err != nil {
		return nil, nil, fmt.Errorf("adapt: profile %q: %w", d.Profile.Name, err)
	}
	if out.Adapted {
		t.saved.add(mt, len(body), len(out.Body))
	}
	return out.Body, out.Header, nil
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

var _ policy.ResponseTranscoder = (*Transcoder)(nil)
