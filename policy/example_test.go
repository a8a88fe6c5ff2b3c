package policy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/edgeadapt/edgeadapt/policy"
)

const examplePolicy = `
[profiles.light.image]
max_width = 800

[[rules]]
name = "slow-images"
match.service = ["respmod"]
match.bandwidth = ["slow"]
match.content_type = ["image/*"]
action = "transcode"
profile = "light"
`

// How icapd decides a RESPMOD message and applies the decision.
func ExamplePolicy_Decide() {
	p, err := policy.Parse("policy.toml", []byte(examplePolicy))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The encapsulated HTTP request and response, and the ICAP header
	// where Squid puts X-Client-IP.
	req, _ := http.NewRequest("GET", "http://example.com/photo.jpg", nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"image/jpeg"}}}
	icapHeader := http.Header{"X-Client-Ip": {"10.0.0.7"}}

	// spand's measurements; here a fixed table.
	pred := &policy.StaticPredictor{Prefixes: map[netip.Prefix]policy.Prediction{
		netip.MustParsePrefix("10.0.0.0/24"): {Throughput: 7000, Reports: 3}, // 56 kbit/s
	}}

	m := policy.NewMessage(policy.Respmod, req, resp, icapHeader)
	d := p.Decide(context.Background(), m, pred)
	fmt.Println(d.Action, d.Rule, d.Profile.Name, d.Net.Class)
	if d.Modifies(policy.Respmod) {
		d.ApplyResponse(resp.Header, d.Action == policy.Transcode)
	}
	fmt.Println("Vary:", resp.Header.Get("Vary"))
	// Output:
	// transcode slow-images light slow
	// Vary: Save-Data, Downlink, RTT, ECT
}

// What `icapd explain` prints.
func ExamplePolicy_ExplainQuery() {
	p, _ := policy.Parse("policy.toml", []byte(examplePolicy))
	ex, err := p.ExplainQuery(context.Background(), policy.Query{
		Service:     policy.Respmod,
		URL:         "http://example.com/a.png",
		ContentType: "image/png",
		Bandwidth:   "2Mbit",
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ex.WriteTo(os.Stdout)
	// Output:
	// rule "slow-images" (line 5): no: bandwidth: want slow, client is fast
	// client network: class fast (from prediction), throughput 2Mbit, rtt 0s
	// decision: pass (no rule matched)
	// vary: Save-Data, Downlink, RTT, ECT
}

// What `icapd -check-policy FILE` reports.
func ExampleParse_errors() {
	_, err := policy.Parse("policy.toml", []byte(`
[[rules]]
name = "a"
match.hots = ["example.com"]
action = "block"
`))
	fmt.Println(err)
	// Output:
	// policy.toml:4: rules[0].match.hots: unknown key
}

// How icapd keeps the policy current: reload on SIGHUP (Reload) and on
// file change (Watch); a bad file keeps the old policy.
func ExampleHolder() {
	dir, _ := os.MkdirTemp("", "policy-example")
	defer os.RemoveAll(dir)
	path := dir + "/policy.toml"
	os.WriteFile(path, []byte(examplePolicy), 0o644)

	h, err := policy.NewHolder(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Println(err)
		return
	}
	v0 := h.Version()

	os.WriteFile(path, []byte("colour = \"blue\"\n"), 0o644)
	err = h.Reload()
	fmt.Println("bad file:", strings.ReplaceAll(err.Error(), dir+"/", ""))
	fmt.Println("kept:", h.Version() == v0, h.Policy().Rules())

	os.WriteFile(path, []byte(examplePolicy), 0o644)
	fmt.Println("reload:", h.Reload(), "new version:", h.Version() != v0)
	// Output:
	// bad file: policy.toml:1: colour: unknown key
	// kept: true [slow-images]
	// reload: <nil> new version: true
}
