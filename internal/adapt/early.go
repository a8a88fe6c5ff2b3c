package adapt

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// ErrEarlyMismatch is returned by an early transcode whose output does
// not have the Content-Type and Content-Encoding already sent: the
// original must be sent instead.
var ErrEarlyMismatch = errors.New("adapt: transcoded body does not match the header already sent")

// Early implements policy.EarlyTranscoder. An early-committed transcode
// keeps the original's format and coding (the profile's image format
// and compression do not apply), so that the header sent before the
// body was read describes the transcoded body and the original alike:
//
//   - Content-Type and Content-Encoding: the original's;
//   - Content-Length, digests and Content-Range: removed (the ICAP
//     client re-frames the body);
//   - ETag: W/"ea-..." derived from the original's ETag and the profile,
//     or none when the original has none. It is weak because the bytes
//     sent under it are the transcoded ones or, if that transcode fails
//     or times out, the original ones: a strong validator would name two
//     different byte sequences;
//   - X-Adapted: "<media type> profile=<name> early; original=<size>"
//     (the size from Content-Length, when known).
//
// It returns nil when the profile does nothing to this media type, or
// the response or request says no-transform, or the response is partial.
func (t *Transcoder) Early(d *policy.Decision, req *http.Request, resp *http.Response) *policy.EarlyTranscode {
	if d.Profile == nil || resp == nil {
		return nil
	}
	orig := resp.Header.Clone()
	reqCC := ""
	if req != nil {
		reqCC = req.Header.Get("Cache-Control")
	}
	if tokenIn(orig.Values("Cache-Control"), "no-transform") || tokenIn([]string{reqCC}, "no-transform") ||
		orig.Get("Content-Range") != "" {
		return nil
	}
	mt := MediaType(orig.Get("Content-Type"))
	prof := earlyProfile(Profile(d.Profile, mt), mt)
	if prof == nil {
		return nil
	}
	h := orig.Clone()
	for _, k := range []string{"Content-Length", "Content-Md5", "Digest", "Repr-Digest", "Content-Digest"} {
		h.Del(k)
	}
	if et := earlyETag(orig.Get("ETag"), prof); et != "" {
		h.Set("ETag", et)
	} else {
		h.Del("ETag")
	}
	desc := mt + " profile=" + d.Profile.Name + " early"
	if resp.ContentLength >= 0 {
		desc += "; original=" + strconv.FormatInt(resp.ContentLength, 10)
	}
	h.Set("X-Adapted", desc)
	in := transcode.Input{Header: orig, CacheControl: reqCC}
	if req != nil {
		in.Accept, in.AcceptEncoding = req.Header.Get("Accept"), req.Header.Get("Accept-Encoding")
	}
	name := d.Profile.Name
	return &policy.EarlyTranscode{Header: h, Transcode: func(ctx context.Context, body []byte) ([]byte, error) {
		in := in
		in.Bytes = body
		out, err := t.tr().Transcode(ctx, in, *prof)
		if err != nil {
			return nil, fmt.Errorf("adapt: profile %q: %w", name, err)
		}
		if MediaType(out.Header.Get("Content-Type")) != mt || !sameCoding(out.Header.Get("Content-Encoding"), orig.Get("Content-Encoding")) {
			return nil, fmt.Errorf("adapt: profile %q: %w (%q %q)", name, ErrEarlyMismatch,
				out.Header.Get("Content-Type"), out.Header.Get("Content-Encoding"))
		}
		if out.Adapted {
			t.saved.add(mt, len(body), len(out.Body))
		}
		return out.Body, nil
	}}
}

// earlyProfile restricts tp, the profile for media type mt, to what an
// early commit allows: the source's image format and the origin's coding.
// It returns nil when nothing is left to do.
func earlyProfile(tp transcode.Profile, mt string) *transcode.Profile {
	tp.Compress, tp.Encodings = false, nil
	if src, err := image.ParseFormat(mt); err == nil && len(tp.Formats) > 0 {
		tp.Formats = []image.Format{src}
		return &tp
	}
	if tp.Minify || tp.Placeholders {
		tp.Formats = nil
		return &tp
	}
	return nil
}

// earlyETag derives the weak ETag of an early-committed response from
// the original's ETag and the profile ("" when the original has none).
func earlyETag(orig string, p *transcode.Profile) string {
	if orig == "" {
		return ""
	}
	h := sha256.Sum256([]byte(orig + "\x00" + p.Key() + "\x00early"))
	return `W/"ea-` + base64.RawURLEncoding.EncodeToString(h[:15]) + `"`
}

// sameCoding compares Content-Encoding values, "" and "identity" alike.
func sameCoding(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "identity" {
			return ""
		}
		return s
	}
	return norm(a) == norm(b)
}

// tokenIn reports whether a comma-separated token list in values holds
// token (case-insensitively).
func tokenIn(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

var _ policy.EarlyTranscoder = (*Transcoder)(nil)
