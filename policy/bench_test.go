package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// bigPolicy returns a policy of n rules shaped like a large site list:
// 90% name hosts or domains (with a path, method or type condition), 10%
// name none (path globs, content types, bandwidth classes).
func bigPolicy(n int) string {
	var b strings.Builder
	b.WriteString("[profiles.p.image]\nmax_width = 100\n\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[[rules]]\nname = \"r%d\"\n", i)
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "match.path = [\"/gen%d/*\"]\nmatch.bandwidth = [\"slow\"]\naction = \"block\"\n", i)
		case 1, 2, 3:
			fmt.Fprintf(&b, "match.host = [\"site%d.example\"]\nmatch.path = [\"/ads/*\", \"*.gif\"]\naction = \"block\"\n", i)
		case 4, 5:
			fmt.Fprintf(&b, "match.host = [\".dom%d.example\"]\nmatch.method = [\"POST\"]\naction = \"block\"\n", i)
		case 6, 7:
			fmt.Fprintf(&b, "match.service = [\"respmod\"]\nmatch.host = [\"img%d.example\"]\nmatch.content_type = [\"image/*\"]\nmatch.bandwidth = [\"slow\", \"medium\"]\naction = \"transcode\"\nprofile = \"p\"\n", i)
		default:
			fmt.Fprintf(&b, "match.host = [\"h%d.example\", \"www.h%d.example\"]\naction = \"pass\"\nresponse_headers.set = { X-Rule = \"%d\" }\n", i, i, i)
		}
	}
	return b.String()
}

// randomMessages draws messages that hit the policy's hosts, domains and
// paths, and miss them, in both services.
func randomMessages(n, rules int, seed uint64) []*Message {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]*Message, n)
	hosts := []string{"site%d.example", "a.dom%d.example", "dom%d.example", "img%d.example", "h%d.example", "www.h%d.example", "other%d.test"}
	paths := []string{"/", "/ads/x", "/a.gif", "/gen%d/x", "/index.html"}
	types := []string{"image/jpeg", "text/html", ""}
	for i := range out {
		k := rng.IntN(rules)
		host := fmt.Sprintf(hosts[rng.IntN(len(hosts))], k)
		path := paths[rng.IntN(len(paths))]
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, k-k%10)
		}
		req := &http.Request{Method: []string{"GET", "POST"}[rng.IntN(2)], URL: &url.URL{Scheme: "http", Host: host, Path: path}, Header: http.Header{}}
		icap := http.Header{"X-Client-Ip": {fmt.Sprintf("10.%d.0.1", 1+rng.IntN(4))}}
		if rng.IntN(4) == 0 {
			req.Header.Set("Save-Data", "on")
		}
		if rng.IntN(2) == 0 {
			out[i] = NewMessage(Reqmod, req, nil, icap)
			continue
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{}}
		if t := types[rng.IntN(len(types))]; t != "" {
			resp.Header.Set("Content-Type", t)
		}
		out[i] = NewMessage(Respmod, req, resp, icap)
	}
	return out
}

// The host index must give exactly the decisions of a linear scan.
func TestIndexMatchesLinear(t *testing.T) {
	const rules = 1000
	p := mustParse(t, bigPolicy(rules))
	msgs := randomMessages(20000, rules, 7)
	matched := 0
	for _, m := range msgs {
		e1 := env{ctx: context.Background(), p: p, m: m, pred: testPredictor}
		e2 := e1
		a, b := p.first(&e1), p.linear(&e2)
		if a != b {
			t.Fatalf("host %q path %q %v: index %v, linear %v", m.Host, m.URL.Path, m.Service, ruleName(a), ruleName(b))
		}
		if a != nil {
			matched++
		}
	}
	// The draw must exercise both outcomes, or the test proves nothing.
	if matched < len(msgs)/10 || matched > len(msgs)*9/10 {
		t.Errorf("%d of %d messages matched a rule", matched, len(msgs))
	}
}

func ruleName(r *rule) string {
	if r == nil {
		return "<none>"
	}
	return r.name
}

// BenchmarkDecide measures one decision against a 1,000-rule policy:
// "indexed" is Decide (host index), "linear" the same rules tried in
// order, the peer the index is measured against. Goal: < 5 µs/op.
func BenchmarkDecide(b *testing.B) {
	for _, rules := range []int{1000} {
		p := mustParse(b, bigPolicy(rules))
		msgs := randomMessages(4096, rules, 42)
		ctx := context.Background()
		b.Run(fmt.Sprintf("rules=%d/indexed", rules), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d := p.Decide(ctx, msgs[i&4095], testPredictor)
				_ = d
				i++
			}
		})
		b.Run(fmt.Sprintf("rules=%d/linear", rules), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := env{ctx: ctx, p: p, m: msgs[i&4095], pred: testPredictor}
				_ = p.decision(p.linear(&e), &e)
				i++
			}
		})
	}
}

// BenchmarkNewMessage is the cost of building the message view.
func BenchmarkNewMessage(b *testing.B) {
	req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: "www.Example.com", Path: "/a.jpg"}, Header: http.Header{"Accept": {"image/webp"}}}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"image/jpeg"}, "Content-Length": {"12345"}}}
	icap := http.Header{"X-Client-Ip": {"10.1.2.3"}}
	b.ReportAllocs()
	for b.Loop() {
		m := NewMessage(Respmod, req, resp, icap)
		if m.ClientIP != netip.MustParseAddr("10.1.2.3") {
			b.Fatal(m.ClientIP)
		}
	}
}
