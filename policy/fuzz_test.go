package policy

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must return a policy
// or an error, never panic, and a policy it returns must decide.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(decidePolicy))
	f.Add([]byte(holderV1))
	f.Add([]byte(bigPolicy(20)))
	f.Add([]byte("[[rules]]\nname = \"x\"\nmatch = { host = [\".a\"], path = [\"/[a-\"] }\naction = \"pass\"\n"))
	f.Add([]byte("[bandwidth]\n[[bandwidth.classes]]\nname = \"a\"\n"))
	if b, err := os.ReadFile(filepath.Join("..", "policy.toml")); err == nil {
		f.Add(b)
	}
	req := &http.Request{Method: "GET", URL: &url.URL{Scheme: "http", Host: "a.example", Path: "/x"}, Header: http.Header{"Save-Data": {"on"}}}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"image/png"}, "Content-Length": {"10"}}}
	icap := http.Header{"X-Client-Ip": {"10.1.0.1"}}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("fuzz.toml", src)
		if err != nil {
			if p != nil {
				t.Fatal("policy and error both returned")
			}
			return
		}
		for _, svc := range []Service{Reqmod, Respmod} {
			m := NewMessage(svc, req, resp, icap)
			d := p.Decide(context.Background(), m, testPredictor)
			if ex := p.Explain(context.Background(), m, testPredictor); ex.Decision.Rule != d.Rule {
				t.Fatalf("Explain %q, Decide %q", ex.Decision.Rule, d.Rule)
			}
		}
	})
}
