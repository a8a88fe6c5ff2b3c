package policy

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

func TestExplainQuery(t *testing.T) {
	p := mustParse(t, decidePolicy)
	ctx := context.Background()
	tests := []struct {
		q    Query
		want []string // lines, in order
	}{
		{Query{URL: "http://ads.example/x.js"}, []string{
			`rule "block-ads" (line 26): MATCH`,
			`decision: block by rule "block-ads" (line 26), status 403, reason "advertising"`,
		}},
		{Query{URL: "http://intranet/admin/x", ClientIP: "198.51.100.7"}, []string{
			`rule "block-ads" (line 26): no: blocklist: "intranet/admin/x" is in none of ads`,
			`rule "old-site" (line 33): no: host: want old.example.org, message has "intranet"`,
			`rule "no-uploads" (line 40): no: method: want PUT|POST, message has GET`,
			`rule "admin-only" (line 50): no: client: want 192.0.2.0/24|2001:db8::/32, message has 198.51.100.7`,
			`rule "admin-denied" (line 57): MATCH`,
		}},
		{Query{Service: Respmod, URL: "http://x/a.jpg", ContentType: "image/jpeg", Length: 5000, Bandwidth: "56kbit"}, []string{
			`rule "high-rtt" (line 83): no: content_type: want text/html, message has "image/jpeg"`,
			`rule "slow-images" (line 91): MATCH`,
			`client network: class slow (from prediction), throughput 56kbit, rtt 0s`,
			`decision: transcode by rule "slow-images" (line 91), profile "light"`,
			`vary: Save-Data, Downlink, RTT, ECT, Accept`,
		}},
		{Query{Service: Respmod, URL: "http://x/a.jpg", ContentType: "image/jpeg", Length: 5000, Bandwidth: "1Mbit"}, []string{
			`rule "slow-images" (line 91): no: bandwidth: want slow, client is medium`,
			`rule "medium-throughput" (line 100): MATCH`,
		}},
		{Query{Service: Respmod, URL: "http://x/a.jpg", ContentType: "image/jpeg", Length: 5000, Bandwidth: "56kbit", Header: http.Header{"Cache-Control": {"no-transform"}}}, []string{
			`rule "slow-images" (line 91): MATCH`,
			`decision: pass by rule "slow-images" (line 91)`,
			`not transformed: request has Cache-Control: no-transform`,
		}},
		{Query{URL: "http://cdn.mirror.example/x", User: "alice"}, []string{
			`rule "alice" (line 62): MATCH`,
			`request headers edited: Cookie, X-User-Tier`,
		}},
		{Query{URL: "http://cdn.mirror.example/x"}, []string{
			`rule "mirror" (line 69): MATCH`,
			`URL rewritten: {Scheme: Host:mirror.lan FromPrefix: ToPrefix: StripQuery:true}`,
		}},
		{Query{URL: "http://nothing.example/"}, []string{
			`rule "unknown-tag" (line 109): no: service: want respmod, message is reqmod`,
			`decision: pass (no rule matched)`,
		}},
	}
	for _, tt := range tests {
		ex, err := p.ExplainQuery(ctx, tt.q, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if _, err := ex.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		pos := 0
		for _, line := range tt.want {
			i := strings.Index(out[pos:], line+"\n")
			if i < 0 {
				t.Errorf("%s: missing (or out of order) %q in\n%s", tt.q.URL, line, out)
				break
			}
			pos += i + len(line)
		}
	}

	for _, q := range []Query{{URL: "/relative"}, {URL: "http://x/", ClientIP: "300.1.1.1"}, {URL: "http://x/", Bandwidth: "fast"}} {
		if _, err := p.ExplainQuery(ctx, q, nil); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}

// The no-transform case of the explanation says why nothing changed.
func TestExplainNoTransform(t *testing.T) {
	p := mustParse(t, decidePolicy)
	m := msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", length: "10", respHdr: map[string]string{"Cache-Control": "no-transform"}}.build(t)
	var b strings.Builder
	p.Explain(context.Background(), m, testPredictor).WriteTo(&b)
	if !strings.Contains(b.String(), "not transformed: response has Cache-Control: no-transform") {
		t.Error(b.String())
	}
}
