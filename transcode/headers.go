package transcode

import (
	"crypto/sha256"
	"encoding/base64"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/edgeadapt/edgeadapt/transcode/compress"
)

// setHeaders turns the original header h into the adapted one.
func setHeaders(h http.Header, in Input, p Profile, res *result, orig []byte) {
	h.Set("Content-Type", res.contentType)
	h.Set("Content-Length", strconv.Itoa(len(res.body)))
	if res.encoding == "" || res.encoding == compress.Identity {
		h.Del("Content-Encoding")
	} else {
		h.Set("Content-Encoding", res.encoding)
	}
	// Digests and ranges of the original do not describe the new body.
	for _, k := range []string{"Content-Md5", "Digest", "Repr-Digest", "Content-Digest", "Content-Range"} {
		h.Del(k)
	}
	h.Set("ETag", etag(in.Header.Get("ETag"), orig, p, res))
	if vary := mergeVary(h.Values("Vary"), res.vary); vary != "" {
		h.Set("Vary", vary)
	}
	h.Set("X-Adapted", res.desc+"; original="+strconv.Itoa(len(orig)))
}

// etag derives a strong ETag from the original's and the profile and the
// variant chosen (type and coding, which Vary says depend on the request).
// A weak or missing original ETag does not identify the bytes, so the
// original body's hash stands in for it.
func etag(origETag string, orig []byte, p Profile, res *result) string {
	h := sha256.New()
	if origETag == "" || strings.HasPrefix(origETag, "W/") {
		b := sha256.Sum256(orig)
		h.Write(b[:])
	} else {
		h.Write([]byte(origETag))
	}
	h.Write([]byte{0})
	h.Write([]byte(p.Key()))
	h.Write([]byte{0})
	h.Write([]byte(res.contentType + "\x00" + res.encoding))
	return `"ea-` + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:15]) + `"`
}

// mergeVary adds names to the existing Vary values, without duplicates; a
// "*" stays alone.
func mergeVary(existing []string, names []string) string {
	var out []string
	seen := map[string]bool{}
	for _, v := range append(existing, names...) {
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" || seen[strings.ToLower(n)] {
				continue
			}
			if n == "*" {
				return "*"
			}
			seen[strings.ToLower(n)] = true
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// accepts reports whether an Accept value allows media type mt with q > 0
// by its exact name (wildcards do not count: "*/*" from an old browser
// does not mean it decodes WebP).
func accepts(accept, mt string) bool {
	for _, part := range strings.Split(accept, ",") {
		t, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || !strings.EqualFold(t, mt) {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
				return false
			}
		}
		return true
	}
	return false
}
