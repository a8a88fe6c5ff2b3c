// Package icapservice serves the policy over ICAP: it is the icap.Handler
// of icapd's /reqmod and /respmod services. For each message it builds a
// policy.Message from the encapsulated HTTP messages and the ICAP header
// (X-Client-IP, X-Authenticated-User), asks the policy in force for a
// Decision, and answers:
//
//   - pass without edits: "no modification" (204, else 206, else echo:
//     icap.NoModification);
//   - header edits: the encapsulated message with edited headers, body
//     streamed through unchanged;
//   - block: the block page as an HTTP response (in REQMOD encapsulated
//     as res-hdr/res-body, i.e. request satisfaction);
//   - redirect: an HTTP redirect response;
//   - transcode: the body through the Transcoder, held in memory up to
//     MaxBodyBytes; on any failure, or over the limit, the original body
//     passes unchanged (fail open) and the failure is logged. Bodies over
//     EarlyCommitBytes are answered before they are read (early commit,
//     policy.EarlyTranscoder), because Squid waits for the answer before
//     it sends more than 64 KB of a body; of those, only EarlyHoldBytes
//     are held, larger ones are sent unchanged (compressed as they
//     stream when the early header announced a compression).
//
// Every response carries the policy's ISTag, which changes on every
// successful reload, so Squid knows adapted content it cached is stale.
package icapservice

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/compress"
)

// DefaultMaxBodyBytes is how much of a body to transcode the service
// holds in memory when Service.MaxBodyBytes is zero; larger bodies pass
// unchanged.
const DefaultMaxBodyBytes = 8 << 20

// DefaultEarlyCommitBytes is the largest body of known length the
// service holds before answering a transcode when
// Service.EarlyCommitBytes is zero; larger bodies, and bodies of unknown
// length, are committed early (see Service.EarlyCommitBytes). It is under
// the 64 KB Squid sends of a body before the ICAP server answers.
const DefaultEarlyCommitBytes = 48 << 10

// DefaultEarlyHoldBytes is how much of an early-committed body the
// service holds to transcode when Service.EarlyHoldBytes is zero; a
// larger body is sent unchanged as soon as it goes over (outcome
// OutcomeTooLarge). Squid 5.7 (Debian 5.7-2+deb12u6) can stop reading
// the origin for good while an ICAP server that has answered sends no
// body bytes (Squid bug 5352), and the more it holds the likelier: in
// probes through Squid (TestEarlyHoldThroughSquid's probe and icapd's),
// bodies held whole stalled 0 of 340 times at 2 MiB, 1 of 40 at 3 MiB,
// 10 of 60 at 4 MiB and 8 of 12 at 8 MiB. 2 MiB still holds most photos
// and pages whole.
const DefaultEarlyHoldBytes = 2 << 20

// OutcomeTooLarge is the early-commit outcome (and logged reason) of a
// body over EarlyHoldBytes or MaxBodyBytes: the original was sent.
const OutcomeTooLarge = "too-large"

// Service is the policy's ICAP handler. Policy is required; the other
// fields have working zero values.
type Service struct {
	// Policy holds the policy in force; each message reads it once.
	Policy *policy.Holder
	// Predictor answers the client's measured bandwidth (spand); nil
	// means no measurements.
	Predictor policy.Predictor
	// Transcoder carries out transcode decisions; nil means
	// policy.NoopTranscoder, which logs and passes bodies through.
	Transcoder policy.Transcoder
	// MaxBodyBytes caps the body held for transcoding; zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// EarlyCommitBytes is the largest body (by its Content-Length) held
	// before the answer starts; zero means DefaultEarlyCommitBytes. A
	// larger body, or one of unknown length, is transcoded with an
	// "early commit" if the Transcoder implements
	// policy.EarlyTranscoder: the header is sent first, keeping the
	// original Content-Type (no format change) and Content-Encoding, or
	// announcing a compression the transcoder chose for an identity-coded
	// text body, then the transcoded body or, if the transcode fails, the
	// original one, encoded as announced.
	// Otherwise it passes unchanged. Smaller bodies are held first and
	// their answer has the new body's Content-Length, and may change
	// format (WebP). Squid 5.7 stops sending a RESPMOD body after 64 KB
	// until the ICAP server answers, so this must stay below 65535 behind
	// Squid.
	EarlyCommitBytes int64
	// EarlyHoldBytes caps the body held to transcode after an early
	// commit; zero means DefaultEarlyHoldBytes, and MaxBodyBytes caps it
	// too. Over it, the service stops holding and sends what it held
	// followed by the rest of the original, unchanged. Behind Squid 5.7
	// it must stay small: while the answer has begun but no body bytes
	// flow, Squid may stop reading the origin and never resume (Squid
	// bug 5352, fixed in Squid 7), so every held body is a risk of a
	// stall until the ICAP read timeout. Without Squid (icapd's own
	// proxy) it may be as large as MaxBodyBytes.
	EarlyHoldBytes int64
	// NoEarlyCommit holds every body to transcode before answering (one
	// that would be committed early up to EarlyHoldBytes, as an early
	// commit would; larger ones pass unchanged), so that the answer's
	// header always describes the body sent: exact
	// Content-Length, a format change, X-Adapted only when the transcode
	// succeeded. It is for ICAP clients that keep sending a body before
	// the answer starts (icapd's own proxy, in process); behind Squid it
	// must be false (Squid stops sending after 64 KB until the answer).
	NoEarlyCommit bool
	// Logger receives decisions that fail open; nil means slog.Default().
	Logger *slog.Logger
	// LogDecisions logs every decision at Info level with the rule name,
	// action, host and client; otherwise only failures are logged.
	LogDecisions bool
	// Counters, if set, counts decisions per rule for /metrics.
	Counters *Counters
}

// ISTag returns the quoted ISTag of policy p: at most 32 bytes, different
// for every successful load (policy.Policy.Version).
func ISTag(p *policy.Policy) string { return `"pol-` + p.Version + `"` }

func (s *Service) maxBodyBytes() int64 { return orDefault(s.MaxBodyBytes, DefaultMaxBodyBytes) }
func (s *Service) earlyCommitBytes() int64 {
	return orDefault(s.EarlyCommitBytes, DefaultEarlyCommitBytes)
}

// earlyHoldBytes is the most of an early-committed body held to
// transcode: EarlyHoldBytes, at most MaxBodyBytes.
func (s *Service) earlyHoldBytes() int64 {
	return min(orDefault(s.EarlyHoldBytes, DefaultEarlyHoldBytes), s.maxBodyBytes())
}

// orDefault returns v, or def when v is zero or negative.
func orDefault(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// ServeICAP implements icap.Handler.
func (s *Service) ServeICAP(w icap.ResponseWriter, r *icap.Request) {
	p := s.Policy.Policy()
	w.Header().Set("ISTag", ISTag(p))
	var svc policy.Service
	switch r.Method {
	case icap.MethodREQMOD:
		svc = policy.Reqmod
	case icap.MethodRESPMOD:
		svc = policy.Respmod
	}
	if svc == policy.ServiceAny || r.Request == nil && svc == policy.Reqmod {
		icap.NoModification(w, r)
		return
	}
	req := r.Request
	if req == nil {
		// RESPMOD without req-hdr (allowed by RFC 3507): decide on the
		// response alone.
		req = &http.Request{Method: http.MethodGet, Header: http.Header{}}
	}
	m := policy.NewMessage(svc, req, r.Response, r.Header)
	d := p.Decide(r.Context(), m, s.Predictor)
	if d.Rule != "" {
		w.Header().Set("X-Policy-Rule", d.Rule)
	}
	if s.Counters != nil {
		s.Counters.add(&d)
	}
	if s.LogDecisions {
		s.logger().LogAttrs(r.Context(), slog.LevelInfo, "policy decision",
			slog.String("service", svc.String()), slog.String("rule", d.Rule), slog.String("action", d.Action.String()),
			slog.String("host", m.Host), slog.String("client", r.ClientIP), slog.String("skipped", d.Skipped),
			slog.String("class", d.Net.Class), slog.String("policy", p.Version))
	}
	switch d.Action {
	case policy.Block:
		resp, err := p.BlockResponse(&d, m, req)
		if err != nil {
			s.logger().Error("icapservice: block page failed; passing the message", "rule", d.Rule, "err", err)
			icap.NoModification(w, r)
			return
		}
		s.answer(w, r, resp)
		return
	case policy.Redirect:
		s.answer(w, r, d.RedirectResponse(req))
		return
	case policy.Transcode:
		if s.transcode(w, r, &d, m) {
			return
		}
	}
	s.editHeaders(w, r, &d, svc)
}

// answer replaces the message with resp (request satisfaction in
// REQMOD); the client's body is not needed.
func (s *Service) answer(w icap.ResponseWriter, r *icap.Request, resp *http.Response) {
	if r.Body != nil {
		r.Body.Close()
	}
	body := resp.Body
	hasBody := body != nil && body != http.NoBody
	w.WriteHeader(icap.StatusOK, resp, hasBody)
	if hasBody {
		io.Copy(w, body)
		body.Close()
	}
}

// editHeaders applies the decision's header edits, or answers "no
// modification" when there are none.
func (s *Service) editHeaders(w icap.ResponseWriter, r *icap.Request, d *policy.Decision, svc policy.Service) {
	var msg any
	changed := false
	switch {
	case svc == policy.Reqmod && (!d.RequestHeaders.Empty() || !d.Rewrite.Empty()):
		changed = d.ApplyRequest(r.Request.Header)
		changed = d.RewriteRequest(r.Request) || changed
		msg = r.Request
	case svc == policy.Respmod && r.Response != nil && !d.ResponseHeaders.Empty():
		changed = d.ApplyResponse(r.Response.Header, false)
		msg = r.Response
	}
	if !changed {
		icap.NoModification(w, r)
		return
	}
	s.stream(w, r, msg, r.Body)
}

// stream sends msg with body (which may be nil or empty).
func (s *Service) stream(w icap.ResponseWriter, r *icap.Request, msg any, body io.Reader) {
	hasBody := r.HasBody()
	w.WriteHeader(icap.StatusOK, msg, hasBody)
	if hasBody && body != nil {
		if _, err := io.Copy(w, body); err != nil {
			s.logger().Warn("icapservice: copying body", "err", err)
		}
	}
}

// transcode carries out a Transcode decision. It reports false, having
// written nothing, when the message should be handled as a pass (with the
// decision's header edits): no body, or no transcoder. A body over the
// limit is handled here, unchanged. A body larger than EarlyCommitBytes
// (or of unknown length) goes through transcodeEarly.
func (s *Service) transcode(w icap.ResponseWriter, r *icap.Request, d *policy.Decision, m *policy.Message) bool {
	resp := r.Response
	if resp == nil || !r.HasBody() {
		return false
	}
	if s.Transcoder == nil {
		// Not wired in: log the no-op, never a silent success.
		policy.NoopTranscoder{Logger: s.Logger}.Transcode(r.Context(), d, m.ContentType, nil)
		return false
	}
	limit := s.maxBodyBytes()
	if resp.ContentLength < 0 || resp.ContentLength > s.earlyCommitBytes() {
		if !s.NoEarlyCommit {
			s.transcodeEarly(w, r, d)
			return true
		}
		limit = s.earlyHoldBytes() // what an early commit would hold
	}
	held, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		// The client's body broke: nothing sensible can be sent back.
		s.logger().Warn("icapservice: reading body to transcode", "rule", d.Rule, "err", err)
		icap.NoModification(w, r)
		return true
	}
	original := io.MultiReader(bytes.NewReader(held), r.Body)
	if int64(len(held)) > limit {
		s.logger().Info("icapservice: body over max_body_bytes; passing unchanged", "rule", d.Rule, "limit", limit)
		d.ApplyResponse(resp.Header, false)
		s.stream(w, r, resp, original)
		return true
	}
	if rt, ok := s.Transcoder.(policy.ResponseTranscoder); ok {
		out, h, err := rt.TranscodeResponse(r.Context(), d, requestOf(r), resp, held)
		if err != nil {
			s.logPass(r, d, "icapservice: transcode passed the original", err)
			d.ApplyResponse(resp.Header, false)
			s.stream(w, r, resp, original)
			return true
		}
		// The transcode's header describes the new body; the decision's
		// edits apply on top.
		resp.Header = h
		d.ApplyResponse(resp.Header, true)
		resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
		resp.ContentLength = int64(len(out))
		s.stream(w, r, resp, bytes.NewReader(out))
		return true
	}
	out, outType, err := s.Transcoder.Transcode(r.Context(), d, m.ContentType, bytes.NewReader(held))
	if err != nil {
		s.logPass(r, d, "icapservice: transcode passed the original", err)
		d.ApplyResponse(resp.Header, false)
		s.stream(w, r, resp, original)
		return true
	}
	h := resp.Header
	d.ApplyResponse(h, true)
	if outType != "" {
		h.Set("Content-Type", outType)
	}
	h.Del("Content-Length") // streamed chunked to the ICAP client
	resp.ContentLength = -1
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		h.Set("ETag", "W/"+et) // no longer byte-identical to the origin's
	}
	s.stream(w, r, resp, out)
	return true
}

// transcodeEarly transcodes a body too large to hold before answering
// ("early commit"). Squid keeps, and stops reading, a RESPMOD body of
// more than 64 KB until the ICAP server starts answering (it may have to
// send the body again, or echo it after a 204), so the answer starts
// first: the ICAP 200 and the HTTP header of policy.EarlyTranscode, which
// holds for the transcoded and the original body alike; the server
// flushes them as soon as the body is read. Then the whole body is read
// (up to EarlyHoldBytes) and the transcoded body sent, or the original
// bytes if the transcode fails, times out or is not smaller; a body over
// EarlyHoldBytes is sent unchanged, what was held first, then the rest as
// it arrives, so that body bytes flow to Squid again (see
// Service.EarlyHoldBytes). A
// Transcoder that cannot commit early passes the body unchanged at once.
//
// The header goes out before the transcode's outcome is known, so it
// says only what holds for either body (policy.EarlyTranscode.Header):
// a transcode that fails after the commit leaves a header that claims no
// adaptation; only a coding announced, which applies to whichever body
// is sent, may be named in it. The outcome is counted (Counters.Early)
// and logged.
func (s *Service) transcodeEarly(w icap.ResponseWriter, r *icap.Request, d *policy.Decision) {
	resp := r.Response
	var e *policy.EarlyTranscode
	if et, ok := s.Transcoder.(policy.EarlyTranscoder); ok {
		e = et.Early(d, requestOf(r), resp)
	}
	if e == nil {
		s.Counters.early("not-committed")
		s.logger().Debug("icapservice: body too large to hold before answering and the transcode cannot be committed early; passing unchanged",
			"rule", d.Rule, "content_length", resp.ContentLength, "early_commit_bytes", s.earlyCommitBytes())
		d.ApplyResponse(resp.Header, false)
		s.stream(w, r, resp, r.Body)
		return
	}
	limit := s.earlyHoldBytes()
	var first []byte
	if r.InPreview() {
		// Read past the preview first, which asks for the rest (100
		// Continue), and answer only once the rest has begun to arrive.
		// Squid parses one ICAP response head per read from the ICAP
		// server: a 200 that arrives in the same read as the 100 Continue
		// stays unparsed in its buffer while Squid waits for more bytes
		// and the server for the body, until the ICAP timeout.
		var err error
		first, err = io.ReadAll(io.LimitReader(r.Body, int64(r.Preview)+1))
		if err != nil {
			s.Counters.early("read-error")
			s.logger().Warn("icapservice: reading body to transcode", "rule", d.Rule, "err", err)
			icap.NoModification(w, r)
			return
		}
	}
	origHeader := resp.Header
	resp.Header = e.Header
	d.ApplyResponse(resp.Header, true)
	// A coding the header announces that the origin did not use (a text
	// body the profile compresses) applies to whatever body is sent, the
	// transcoded one or the original, as it streams.
	body, err := encoder(w, origHeader.Get("Content-Encoding"), resp.Header.Get("Content-Encoding"))
	if err != nil {
		s.Counters.early("not-committed")
		s.logger().Warn("icapservice: cannot encode an early-committed body; passing unchanged", "rule", d.Rule, "err", err)
		resp.Header = origHeader
		d.ApplyResponse(resp.Header, false)
		s.stream(w, r, resp, r.Body)
		return
	}
	resp.ContentLength = -1
	w.WriteHeader(icap.StatusOK, resp, true)

	rest, err := io.ReadAll(io.LimitReader(r.Body, limit+1-int64(len(first))))
	held := append(first, rest...)
	if err != nil {
		// The answer has begun: it cannot be turned into anything
		// correct. The server leaves it unterminated and closes the
		// connection, so the ICAP client sees an error, not a short body.
		s.Counters.early("read-error")
		s.logger().Warn("icapservice: reading body to transcode after committing early", "rule", d.Rule, "err", err)
		return
	}
	var outcome string
	var src io.Reader
	if int64(len(held)) > limit {
		outcome = OutcomeTooLarge
		s.logger().Info("icapservice: body over the early-commit hold limit; sending the original", "rule", d.Rule,
			"reason", OutcomeTooLarge, "limit", limit, "content_encoding", resp.Header.Get("Content-Encoding"))
		src = io.MultiReader(bytes.NewReader(held), r.Body)
	} else if out, err := e.Transcode(r.Context(), held); err != nil {
		outcome = passReason(err)
		s.logPass(r, d, "icapservice: early-committed transcode sends the original", err)
		src = bytes.NewReader(held)
	} else {
		outcome = "adapted"
		src = bytes.NewReader(out)
	}
	s.Counters.early(outcome)
	if _, err := io.Copy(body, src); err != nil {
		// Not closing the encoder leaves its stream without its end; the
		// server cuts the response (a broken request body) or the
		// connection is gone (a failed write).
		s.logger().Warn("icapservice: writing early-committed body", "rule", d.Rule, "outcome", outcome, "err", err)
		return
	}
	if err := body.Close(); err != nil {
		s.logger().Warn("icapservice: ending early-committed body", "rule", d.Rule, "outcome", outcome, "err", err)
	}
}

// encoder returns the writer the body of an early commit goes through:
// w itself when the announced coding is the origin's, else an encoder to
// the announced coding of the identity-coded original. Its Close ends
// the coded stream (and does not close w).
func encoder(w io.Writer, origCE, announced string) (io.WriteCloser, error) {
	orig, ce := compress.Normalize(origCE), compress.Normalize(announced)
	if ce == orig {
		return compress.NewWriter(w, compress.Identity)
	}
	if orig != compress.Identity {
		return nil, fmt.Errorf("icapservice: early commit announces Content-Encoding %q for a body coded %q", announced, origCE)
	}
	return compress.NewWriter(w, ce)
}

// requestOf returns the encapsulated HTTP request of r, or an empty GET
// for a RESPMOD without one.
func requestOf(r *icap.Request) *http.Request {
	if r.Request != nil {
		return r.Request
	}
	return &http.Request{Method: http.MethodGet, Header: http.Header{}}
}

// logPass logs why a transcode kept the original: at Debug level for a
// *transcode.PassError (the expected outcomes: not smaller, too many
// pixels, timeout...; transcode logs those itself) and ErrNotWired, at
// Warn for anything else.
func (s *Service) logPass(r *icap.Request, d *policy.Decision, msg string, err error) {
	if errors.Is(err, policy.ErrNotWired) {
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, transcode.ErrPass) {
		level = slog.LevelDebug
	}
	profile := ""
	if d.Profile != nil {
		profile = d.Profile.Name
	}
	s.logger().LogAttrs(r.Context(), level, msg, slog.String("rule", d.Rule), slog.String("profile", profile),
		slog.String("reason", passReason(err)), slog.Any("err", err))
}

// passReason names why a transcode kept the original, for metrics: the
// *transcode.PassError's reason, else "error".
func passReason(err error) string {
	var pe *transcode.PassError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return transcode.ReasonError
}

var _ icap.Handler = (*Service)(nil)
