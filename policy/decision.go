package policy

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/edgeadapt/edgeadapt/filters/blockpage"
	"github.com/edgeadapt/edgeadapt/filters/headers"
	"github.com/edgeadapt/edgeadapt/filters/rewrite"
)

// Action is what a rule does with a message it matches.
type Action uint8

// Actions. The zero value is Pass.
const (
	// Pass leaves the message alone (ICAP 204), except for the rule's
	// header edits, if any.
	Pass Action = iota
	// Block answers with the block page (status, reason, rule name).
	Block
	// Redirect answers with a redirect to the rule's location.
	Redirect
	// Transcode transforms the response body with the rule's profile.
	Transcode
)

var actionNames = [...]string{Pass: "pass", Block: "block", Redirect: "redirect", Transcode: "transcode"}

func (a Action) String() string { return actionNames[a] }

func parseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if s == n {
			return Action(i), true
		}
	}
	return Pass, false
}

// Default statuses of the block and redirect actions.
const (
	DefaultBlockStatus    = http.StatusForbidden
	DefaultRedirectStatus = http.StatusFound
)

// Decision is the policy's verdict on one message. It is a value: it
// aliases the policy's read-only rule data (headers, profile) and is
// valid even after the policy is replaced.
type Decision struct {
	Action Action
	// Rule is the name of the matching rule, "" when none matched (the
	// default: pass). Line is its line in the policy file.
	Rule string
	Line int

	Status   int    // Block and Redirect: the HTTP status to answer with
	Reason   string // Block: the reason shown on the page
	Location string // Redirect: the target URL

	// Profile is the transcoding profile (Transcode only).
	Profile *Profile
	// ImageFormat is the output image format, resolved against the
	// request's Accept header: a "webp" profile falls back to "keep" for
	// a client that does not accept image/webp. Transcode only.
	ImageFormat string

	RequestHeaders  *headers.Rules // edits to the HTTP request (REQMOD)
	ResponseHeaders *headers.Rules // edits to the HTTP response (RESPMOD)
	// Rewrite changes the request URL (REQMOD, action pass); nil if none.
	Rewrite *rewrite.URL

	// Net is what the policy concluded about the client's network; its
	// Class is "" when no rule needed it.
	Net NetInfo

	// Vary lists every request header the decision read (client hints,
	// Accept). A response the adaptation changes must carry them in
	// Vary, so a cache never serves one client's version to another:
	// ApplyResponse does it.
	Vary []string

	// Skipped says why a Transcode was turned into a Pass: the response
	// or the request carries Cache-Control: no-transform, the response
	// is partial (206, Content-Range),
	// or its type is not one the profile names. "" otherwise.
	Skipped string
}

// Modifies reports whether the decision changes the message at all; if
// not, the ICAP service answers 204 No Content.
func (d *Decision) Modifies(svc Service) bool {
	switch d.Action {
	case Block, Redirect, Transcode:
		return true
	}
	if svc == Reqmod {
		return !d.RequestHeaders.Empty() || !d.Rewrite.Empty()
	}
	return !d.ResponseHeaders.Empty()
}

// ApplyRequest applies the request header edits to h (REQMOD) and
// reports whether h changed.
func (d *Decision) ApplyRequest(h http.Header) bool {
	return d.RequestHeaders.Apply(h)
}

// RewriteRequest applies the URL rewrite to req (REQMOD): its URL and
// Host. It reports whether the URL changed.
func (d *Decision) RewriteRequest(req *http.Request) bool {
	return d.Rewrite.Apply(req)
}

// ApplyResponse applies the response header edits to h (RESPMOD). If
// transformed is true (the body will be transcoded) or the edits changed
// h, it also adds d.Vary to h's Vary field. It reports whether h changed.
func (d *Decision) ApplyResponse(h http.Header, transformed bool) bool {
	changed := d.ResponseHeaders.Apply(h)
	if changed || transformed {
		AddVary(h, d.Vary)
		changed = true
	}
	return changed
}

// AddVary adds each name to h's Vary field unless it is already listed
// (case-insensitively) or Vary is "*".
func AddVary(h http.Header, names []string) {
	if len(names) == 0 {
		return
	}
	have := strings.Join(h.Values("Vary"), ",")
	var add []string
	for _, n := range names {
		if !varyHas(have, n) {
			add = append(add, n)
		}
	}
	if len(add) > 0 {
		if have != "" {
			h.Set("Vary", have+", "+strings.Join(add, ", "))
		} else {
			h.Set("Vary", strings.Join(add, ", "))
		}
	}
}

func varyHas(list, name string) bool {
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "*" || strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// BlockResponse renders the policy's block page for a Block decision on
// m as a complete HTTP response, ready to encapsulate (in REQMOD as
// res-hdr/res-body).
func (p *Policy) BlockResponse(d *Decision, m *Message, req *http.Request) (*http.Response, error) {
	data := blockpage.Data{Status: d.Status, Reason: d.Reason, Rule: d.Rule, Host: m.Host}
	if m.URL != nil {
		data.URL = m.URL.String()
	}
	if m.ClientIP.IsValid() {
		data.ClientIP = m.ClientIP.String()
	}
	return p.page.Response(req, data)
}

// RedirectResponse returns the HTTP response of a Redirect decision.
func (d *Decision) RedirectResponse(req *http.Request) *http.Response {
	h := http.Header{}
	h.Set("Location", d.Location)
	h.Set("Content-Length", "0")
	h.Set("Cache-Control", "no-store")
	return &http.Response{
		Status: http.StatusText(d.Status), StatusCode: d.Status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Request: req,
	}
}

// Decide returns the decision for m: the first rule (in priority, then
// file order) whose every condition matches m decides; if none does, the
// message passes. pred may be nil (no measurements). Decide is safe for
// concurrent use and does not allocate in the common case.
func (p *Policy) Decide(ctx context.Context, m *Message, pred Predictor) Decision {
	e := env{ctx: ctx, p: p, m: m, pred: pred}
	return p.decision(p.first(&e), &e)
}

// decision turns the matching rule (nil: none) into a Decision,
// enforcing the never-transform rules.
func (p *Policy) decision(r *rule, e *env) Decision {
	var d Decision
	if e.netDone {
		d.Net = e.ni
		if p.hints {
			d.Vary = hintHeaders
		}
	}
	if r == nil {
		return d
	}
	d.Rule, d.Line, d.Action = r.name, r.line, r.action
	d.Status, d.Reason, d.Location = r.status, r.reason, r.location
	d.RequestHeaders, d.ResponseHeaders = r.reqHdr, r.respHdr
	if m := e.m; m.Service == Reqmod {
		d.Rewrite = r.rewrite
	}
	if r.action != Transcode {
		return d
	}
	d.Profile = r.profile
	m := e.m
	if why := transformBlocked(m, r.profile); why != "" {
		d.Action, d.Skipped, d.Profile = Pass, why, nil
		return d
	}
	d.ImageFormat = ""
	if r.profile.Image != nil && strings.HasPrefix(m.ContentType, "image/") {
		d.ImageFormat = r.profile.Image.Format
		if d.ImageFormat == "webp" {
			if !acceptsWebP(m.Header) {
				d.ImageFormat = "keep"
			}
			d.Vary = withAccept(d.Vary)
		}
	}
	return d
}

// transformBlocked says why a response must not be transformed, or "".
func transformBlocked(m *Message, prof *Profile) string {
	if m.Service != Respmod {
		return "transcode applies to responses only"
	}
	if m.Status == http.StatusPartialContent || m.ResponseHeader.Get("Content-Range") != "" {
		return "partial response (206 or Content-Range)"
	}
	if hasNoTransform(m.ResponseHeader) {
		return "response has Cache-Control: no-transform"
	}
	if hasNoTransform(m.Header) {
		// RFC 9111 section 5.2.1.6: the client asks intermediaries not
		// to transform the content.
		return "request has Cache-Control: no-transform"
	}
	if !prof.Handles(m.ContentType) {
		return "content type " + strconvQuote(m.ContentType) + " not named by profile " + strconvQuote(prof.Name)
	}
	return ""
}

func strconvQuote(s string) string { return `"` + s + `"` }

// hasNoTransform reports whether any Cache-Control field has the
// no-transform directive (RFC 9111 section 5.2.2.6).
func hasNoTransform(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-transform") {
				return true
			}
		}
	}
	return false
}

func acceptsWebP(h http.Header) bool {
	for _, v := range h.Values("Accept") {
		for _, t := range strings.Split(v, ",") {
			t, params, _ := strings.Cut(t, ";")
			if strings.EqualFold(strings.TrimSpace(t), "image/webp") {
				return !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") || strings.Contains(params, "q=0.")
			}
		}
	}
	return false
}

var (
	varyAccept      = []string{"Accept"}
	varyHintsAccept = append(slices.Clone(hintHeaders), "Accept")
)

func withAccept(v []string) []string {
	if len(v) == 0 {
		return varyAccept
	}
	return varyHintsAccept
}
