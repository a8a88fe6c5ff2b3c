package policy

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
