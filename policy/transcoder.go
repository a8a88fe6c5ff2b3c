package policy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
)

// ErrNotWired is returned by NoopTranscoder: the transcoding library is
// not connected, so the body must pass through unchanged.
var ErrNotWired = errors.New("policy: transcoding library not wired in")

// Transcoder carries out a Transcode decision on a response body. It
// returns the new body and content type, or an error, in which case the
// caller passes the original body through unchanged (fail open).
type Transcoder interface {
	Transcode(ctx context.Context, d *Decision, contentType string, body io.Reader) (out io.Reader, outType string, err error)
}

// ResponseTranscoder is an optional interface of a Transcoder (checked
// at run time) that transforms a whole HTTP response: it sees the request
// (Accept, Accept-Encoding) and the response header (ETag, encoding), and
// returns the header that describes its output.
type ResponseTranscoder interface {
	Transcoder
	// TranscodeResponse transforms body, the whole body of resp, answering
	// req. It returns the new body and the complete response header
	// describing it (Content-Type, Content-Length, Content-Encoding, ETag,
	// Vary, ...), made from resp's; resp is not modified. On any error the
	// caller passes the original unchanged.
	TranscodeResponse(ctx context.Context, d *Decision, req *http.Request, resp *http.Response, body []byte) ([]byte, http.Header, error)
}

// EarlyTranscoder is an optional interface of a Transcoder (checked at
// run time, like net/http's optional interfaces) for transcodes whose
// response header can be decided before the body is read. The ICAP
// service uses it for bodies too large to hold before answering: it
// sends Header at once, then reads the whole body and sends what
// Transcode returns, or the original bytes if Transcode fails. (Squid
// keeps, and stops reading, a RESPMOD body of more than 64 KB until the
// ICAP server starts answering, so such a body can only be held whole
// after the answer has begun.)
type EarlyTranscoder interface {
	Transcoder
	// Early prepares the transcode of resp's body, answering req. It
	// returns nil when the transcode cannot be committed to in advance
	// (the profile does nothing to this content, no-transform, a partial
	// response...): the body then passes unchanged. Early must not
	// modify req or resp.
	Early(d *Decision, req *http.Request, resp *http.Response) *EarlyTranscode
}

// EarlyTranscode is a transcode committed to before its body is read.
type EarlyTranscode struct {
	// Header is the complete header of the response to send. It holds
	// for the transcoded body and for the original one alike: the same
	// Content-Type as the original, no Content-Length, and validators
	// that do not depend on the output; nothing in it (X-Adapted) may
	// claim a transformation that happens only if Transcode succeeds.
	// When it announces a coding the origin did not use (compression of
	// an identity-coded text body), the caller applies that coding to
	// whichever body it sends.
	Header http.Header
	// Transcode transforms the whole original body into one Header
	// describes. It must not modify body. On any error the caller sends
	// body unchanged; the error says why (a *transcode.PassError for the
	// usual reasons).
	Transcode func(ctx context.Context, body []byte) ([]byte, error)
}

// NoopTranscoder is the Transcoder in force until the transcoding library
// is wired in: it logs one line per decision, naming the rule and the
// profile, and returns ErrNotWired, so a transcode decision is never a
// silent success.
type NoopTranscoder struct {
	Logger *slog.Logger // nil: slog.Default()
}

// Transcode implements Transcoder.
func (n NoopTranscoder) Transcode(ctx context.Context, d *Decision, contentType string, _ io.Reader) (io.Reader, string, error) {
	l := n.Logger
	if l == nil {
		l = slog.Default()
	}
	profile := ""
	if d.Profile != nil {
		profile = d.Profile.Name
	}
	l.LogAttrs(ctx, slog.LevelWarn, "transcode: no-op, passing the body through",
		slog.String("rule", d.Rule), slog.String("profile", profile),
		slog.String("content_type", contentType), slog.String("reason", ErrNotWired.Error()))
	return nil, "", ErrNotWired
}

var _ Transcoder = NoopTranscoder{}
