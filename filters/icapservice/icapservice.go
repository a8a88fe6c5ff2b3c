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
//     passes unchanged (fail open) and the failure is logged.
//
// Every response carries the policy's ISTag, which changes on every
// successful reload, so Squid knows adapted content it cached is stale.
package icapservice

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/policy"
)

// DefaultMaxBodyBytes is how much of a body to transcode the service
// holds in memory when Service.MaxBodyBytes is zero; larger bodies pass
// unchanged.
const DefaultMaxBodyBytes = 8 << 20

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
// decision's header edits): no body, no transcoder, a body over the
// limit is handled here, unchanged.
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
	limit := s.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
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
	out, outType, err := s.Transcoder.Transcode(r.Context(), d, m.ContentType, bytes.NewReader(held))
	if err != nil {
		if !errors.Is(err, policy.ErrNotWired) {
			s.logger().Warn("icapservice: transcode failed; passing the original", "rule", d.Rule, "profile", d.Profile.Name, "err", err)
		}
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

var _ icap.Handler = (*Service)(nil)
