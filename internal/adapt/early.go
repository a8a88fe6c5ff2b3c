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
	"github.com/edgeadapt/edgeadapt/transcode/compress"
	"github.com/edgeadapt/edgeadapt/transcode/html"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// ErrEarlyMismatch is returned by an early transcode whose output does
// not have the Content-Type and Content-Encoding already sent: the
// original must be sent instead.
var ErrEarlyMismatch = errors.New("adapt: transcoded body does not match the header already sent")

// Early implements policy.EarlyTranscoder. An early-committed transcode
// keeps the original's format (the profile's image format does not
// apply), so that the header sent before the body was read describes the
// transcoded body and the original alike:
//
//   - Content-Type: the original's;
//   - Content-Encoding: the original's, except for a text body (HTML,
//     CSS, JS, JSON, text/*) that the origin sent identity-coded, whose
//     profile compresses, to a client that accepts a coding
//     compress.NewWriter streams (br, zstd, gzip, negotiated with the
//     profile's Encodings): then that coding, with "Vary:
//     Accept-Encoding". Transcode still returns an identity-coded body;
//     the caller encodes whatever body it sends (the transcoded one or
//     the original) with the announced coding, as it streams;
//   - Content-Length, digests and Content-Range: removed (the ICAP
//     client re-frames the body);
//   - ETag: W/"ea-..." derived from the original's ETag and the profile,
//     or none when the original has none. It is weak because the bytes
//     sent under it are the transcoded ones or, if that transcode fails
//     or times out, the original ones: a strong validator would name two
//     different byte sequences;
//   - X-Adapted: only with a coding announced (the one change made to
//     whichever body is sent): "<media type> profile=<name> early
//     <coding>; original=<size>" (the size from Content-Length, when
//     known). Otherwise none: the header goes out before the transcode
//     runs, and if it fails the original bytes follow, so a header that
//     claimed the transcode would lie about them. A response must never
//     claim an adaptation that did not happen; the outcome of an early
//     transcode is counted and logged by the caller instead. (icapd's own
//     proxy, where nothing stalls a body before the answer, holds bodies
//     whole and does not commit early: icapservice.Service.NoEarlyCommit.)
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
	tp := Profile(d.Profile, mt)
	in := transcode.Input{Header: orig, CacheControl: reqCC}
	if req != nil {
		in.Accept, in.AcceptEncoding = req.Header.Get("Accept"), req.Header.Get("Accept-Encoding")
	}
	coding := earlyCoding(tp, mt, orig.Get("Content-Encoding"), in.AcceptEncoding)
	prof := earlyProfile(tp, mt)
	if prof == nil && coding == "" {
		return nil
	}
	h := orig.Clone()
	for _, k := range []string{"Content-Length", "Content-Md5", "Digest", "Repr-Digest", "Content-Digest"} {
		h.Del(k)
	}
	key := tp.Key()
	if prof != nil {
		key = prof.Key()
	}
	if et := earlyETag(orig.Get("ETag"), key, coding); et != "" {
		h.Set("ETag", et)
	} else {
		h.Del("ETag")
	}
	if coding != "" {
		// The coding applies to the transcoded body and to the original
		// alike: the one adaptation this header can promise.
		h.Set("Content-Encoding", coding)
		h.Set("Vary", mergeVary(h.Values("Vary"), "Accept-Encoding"))
		desc := mt + " profile=" + d.Profile.Name + " early " + coding
		if resp.ContentLength >= 0 {
			desc += "; original=" + strconv.FormatInt(resp.ContentLength, 10)
		}
		h.Set("X-Adapted", desc)
	}
	name := d.Profile.Name
	return &policy.EarlyTranscode{Header: h, Transcode: func(ctx context.Context, body []byte) ([]byte, error) {
		if prof == nil {
			// Compression only: the original is the body to encode.
			return nil, &transcode.PassError{Reason: transcode.ReasonNotApplicable,
				Err: fmt.Errorf("adapt: profile %q: early commit only compresses %s", name, mt)}
		}
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

// earlyCoding returns the coding an early commit announces for a body
// of media type mt with Content-Encoding origCE, for a client sending
// acceptEncoding, under profile tp: "" to keep the origin's coding (the
// profile does not compress, the body is an image or not text, already
// coded, or the client accepts nothing but identity).
func earlyCoding(tp transcode.Profile, mt, origCE, acceptEncoding string) string {
	if !tp.Compress || compress.Normalize(origCE) != compress.Identity {
		return ""
	}
	if _, err := image.ParseFormat(mt); err == nil || !html.Minifiable(mt) && !strings.HasPrefix(mt, "text/") {
		return ""
	}
	if c := compress.Negotiate(acceptEncoding, tp.Encodings); c != compress.Identity {
		return c
	}
	return ""
}

// mergeVary adds name to the Vary values unless they hold it or "*".
func mergeVary(values []string, name string) string {
	if tokenIn(values, name) || tokenIn(values, "*") {
		return strings.Join(values, ", ")
	}
	return strings.Join(append(values, name), ", ")
}

// earlyETag derives the weak ETag of an early-committed response from
// the original's ETag, the profile's key and the coding announced (""
// when the original has none).
func earlyETag(orig, key, coding string) string {
	if orig == "" {
		return ""
	}
	h := sha256.Sum256([]byte(orig + "\x00" + key + "\x00early\x00" + coding))
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
