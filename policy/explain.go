package policy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Explanation says why a message got its decision: every rule tried, in
// order, with the condition that failed, up to the one that matched.
type Explanation struct {
	Decision Decision
	Trace    []RuleTrace
}

// RuleTrace is the outcome of one rule for the message.
type RuleTrace struct {
	Rule    string
	Line    int
	Matched bool
	// Failed names the first condition that did not match, with what the
	// rule wanted and what the message had; "" when Matched.
	Failed string
}

// Explain decides m like Decide, trying every rule in order (without the
// host index, so it also shows that the index changes nothing), and
// records why each rule did or did not match.
func (p *Policy) Explain(ctx context.Context, m *Message, pred Predictor) *Explanation {
	e := env{ctx: ctx, p: p, m: m, pred: pred}
	ex := &Explanation{}
	var match *rule
	for _, r := range p.rules {
		ok, c := r.match(&e)
		t := RuleTrace{Rule: r.name, Line: r.line, Matched: ok}
		if !ok {
			t.Failed = r.describe(c, &e)
		}
		ex.Trace = append(ex.Trace, t)
		if ok {
			match = r
			break
		}
	}
	ex.Decision = p.decision(match, &e)
	return ex
}

// WriteTo prints the explanation for people, one rule per line, then the
// decision: what `icapd explain` shows.
func (ex *Explanation) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, t := range ex.Trace {
		if t.Matched {
			fmt.Fprintf(&b, "rule %q (line %d): MATCH\n", t.Rule, t.Line)
		} else {
			fmt.Fprintf(&b, "rule %q (line %d): no: %s\n", t.Rule, t.Line, t.Failed)
		}
	}
	d := &ex.Decision
	if d.Net.Class != "" {
		fmt.Fprintf(&b, "client network: class %s (from %s), throughput %v, rtt %v\n", d.Net.Class, d.Net.Source, d.Net.Throughput, d.Net.RTT)
	}
	if d.Rule == "" {
		b.WriteString("decision: pass (no rule matched)\n")
	} else {
		fmt.Fprintf(&b, "decision: %s by rule %q (line %d)", d.Action, d.Rule, d.Line)
		switch d.Action {
		case Block:
			fmt.Fprintf(&b, ", status %d, reason %q", d.Status, d.Reason)
		case Redirect:
			fmt.Fprintf(&b, ", status %d to %s", d.Status, d.Location)
		case Transcode:
			fmt.Fprintf(&b, ", profile %q", d.Profile.Name)
		}
		b.WriteString("\n")
	}
	if names := d.RequestHeaders.Names(); len(names) > 0 {
		fmt.Fprintf(&b, "request headers edited: %s\n", strings.Join(names, ", "))
	}
	if names := d.ResponseHeaders.Names(); len(names) > 0 {
		fmt.Fprintf(&b, "response headers edited: %s\n", strings.Join(names, ", "))
	}
	if !d.Rewrite.Empty() {
		fmt.Fprintf(&b, "URL rewritten: %+v\n", *d.Rewrite)
	}
	if d.Skipped != "" {
		fmt.Fprintf(&b, "not transformed: %s\n", d.Skipped)
	}
	if len(d.Vary) > 0 {
		fmt.Fprintf(&b, "vary: %s\n", strings.Join(d.Vary, ", "))
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Query describes a message to explain from the command line: `icapd
// explain -url URL -client-ip IP [-bandwidth 56kbit]`. Zero fields are
// absent.
type Query struct {
	Service     Service     // default Reqmod
	Method      string      // default GET
	URL         string      // required
	ClientIP    string      // X-Client-IP
	User        string      // decoded X-Authenticated-User
	Bandwidth   string      // e.g. "56kbit": the client's measured rate, overriding the predictor
	Header      http.Header // request header (client hints)
	Status      int         // response status (respmod)
	ContentType string      // response (respmod) or request content type
	Length      int64       // content length; 0: unknown
}

// ExplainQuery builds the message q describes and explains it. pred is
// used unless q.Bandwidth is set.
func (p *Policy) ExplainQuery(ctx context.Context, q Query, pred Predictor) (*Explanation, error) {
	u, err := url.Parse(q.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("explain: -url %q: want an absolute URL", q.URL)
	}
	if q.Service == ServiceAny {
		q.Service = Reqmod
	}
	if q.Method == "" {
		q.Method = http.MethodGet
	}
	req := &http.Request{Method: q.Method, URL: u, Host: u.Host, Header: q.Header}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	var resp *http.Response
	h := req.Header
	if q.Service == Respmod {
		resp = &http.Response{StatusCode: q.Status, Header: http.Header{}}
		if resp.StatusCode == 0 {
			resp.StatusCode = http.StatusOK
		}
		h = resp.Header
	}
	if q.ContentType != "" {
		h.Set("Content-Type", q.ContentType)
	}
	if q.Length > 0 {
		h.Set("Content-Length", fmt.Sprint(q.Length))
	}
	m := NewMessage(q.Service, req, resp, nil)
	m.User = q.User
	if q.ClientIP != "" {
		a, err := netip.ParseAddr(q.ClientIP)
		if err != nil {
			return nil, fmt.Errorf("explain: -client-ip: %w", err)
		}
		m.ClientIP = a.Unmap()
	}
	if q.Bandwidth != "" {
		r, err := ParseBandwidth(q.Bandwidth)
		if err != nil {
			return nil, fmt.Errorf("explain: -bandwidth: %w", err)
		}
		pred = FixedPredictor(r)
		if !m.ClientIP.IsValid() {
			// The predictor answers per address; any address will do.
			m.ClientIP = netip.IPv4Unspecified()
		}
	}
	return p.Explain(ctx, m, pred), nil
}
