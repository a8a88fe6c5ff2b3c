package policy

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// decidePolicy exercises every condition and action once.
const decidePolicy = `
[bandwidth]
save_data = "slow"
min_reports = 2
max_age = "10m"

[[bandwidth.classes]]
name = "slow"
below = "256kbit"
[[bandwidth.classes]]
name = "medium"
below = "2Mbit"
[[bandwidth.classes]]
name = "fast"

[blocklists.ads]
hosts = ["ads.example", "tracker.example.net"]
urls = ["cdn.example/ads/*"]

[profiles.light.image]
max_width = 640
format = "webp"
[profiles.light.html]
minify = true

[[rules]]
name = "block-ads"
match.service = ["reqmod"]
match.blocklist = ["ads"]
action = "block"
reason = "advertising"

[[rules]]
name = "old-site"
match.host = ["old.example.org"]
action = "redirect"
location = "https://new.example.org/"
status = 301

[[rules]]
name = "no-uploads"
match.service = ["reqmod"]
match.method = ["PUT", "POST"]
match.host = [".files.example"]
match.min_content_length = 1048576
action = "block"
status = 413
reason = "uploads over 1 MiB"

[[rules]]
name = "admin-only"
match.path = ["/admin/*"]
match.client = ["192.0.2.0/24", "2001:db8::/32"]
action = "pass"
request_headers.set = { "X-Admin" = "1" }

[[rules]]
name = "admin-denied"
match.path = ["/admin/*"]
action = "block"

[[rules]]
name = "alice"
match.user = ["alice", "ldap://corp.example/bob*"]
action = "pass"
request_headers.add = { "X-User-Tier" = "gold" }
request_headers.remove = ["Cookie"]

[[rules]]
name = "mirror"
match.host = ["cdn.mirror.example"]
action = "pass"
rewrite.host = "mirror.lan"
rewrite.strip_query = true

[[rules]]
name = "errors-tagged"
match.service = ["respmod"]
match.status = [500, 502, 503]
action = "pass"
response_headers.set = { "Cache-Control" = "no-store" }

[[rules]]
name = "high-rtt"
match.service = ["respmod"]
match.min_rtt = "800ms"
match.content_type = ["text/html"]
action = "transcode"
profile = "light"

[[rules]]
name = "slow-images"
match.service = ["respmod"]
match.bandwidth = ["slow"]
match.content_type = ["image/*"]
match.max_content_length = 10000000
action = "transcode"
profile = "light"

[[rules]]
name = "medium-throughput"
match.service = ["respmod"]
match.min_throughput = "256kbit"
match.max_throughput = "2Mbit"
match.content_type = ["text/html", "image/*"]
action = "transcode"
profile = "light"

[[rules]]
name = "unknown-tag"
match.service = ["respmod"]
match.bandwidth = ["unknown"]
action = "pass"
response_headers.add = { "X-Bandwidth" = "unknown" }
`

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// msg describes a test message compactly.
type msg struct {
	svc     Service
	method  string
	url     string
	client  string
	user    string // clear text; sent base64 encoded
	reqHdr  map[string]string
	status  int
	ctype   string
	length  string
	respHdr map[string]string
}

func (m msg) build(t testing.TB) *Message {
	t.Helper()
	u, err := url.Parse(m.url)
	if err != nil {
		t.Fatal(err)
	}
	method := m.method
	if method == "" {
		method = "GET"
	}
	req := &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}}
	for k, v := range m.reqHdr {
		req.Header.Set(k, v)
	}
	icap := http.Header{}
	if m.client != "" {
		icap.Set("X-Client-IP", m.client)
	}
	if m.user != "" {
		icap.Set("X-Authenticated-User", base64.StdEncoding.EncodeToString([]byte(m.user)))
	}
	var resp *http.Response
	body := req.Header
	if m.svc == Respmod {
		resp = &http.Response{StatusCode: m.status, Header: http.Header{}}
		if resp.StatusCode == 0 {
			resp.StatusCode = 200
		}
		for k, v := range m.respHdr {
			resp.Header.Set(k, v)
		}
		body = resp.Header
	}
	if m.ctype != "" {
		body.Set("Content-Type", m.ctype)
	}
	if m.length != "" {
		body.Set("Content-Length", m.length)
	}
	svc := m.svc
	if svc == ServiceAny {
		svc = Reqmod
	}
	return NewMessage(svc, req, resp, icap)
}

// testPredictor: 10.1/16 is slow, 10.2/16 medium, 10.3/16 fast, 10.4/16
// has too few reports, 10.5/16 is stale, 10.6/16 is far away (high RTT).
var testPredictor = &StaticPredictor{Prefixes: map[netip.Prefix]Prediction{
	netip.MustParsePrefix("10.1.0.0/16"): {Throughput: 56_000 / 8, RTT: 300 * time.Millisecond, Reports: 5},
	netip.MustParsePrefix("10.2.0.0/16"): {Throughput: 1_000_000 / 8, RTT: 100 * time.Millisecond, Reports: 5},
	netip.MustParsePrefix("10.3.0.0/16"): {Throughput: 50_000_000 / 8, RTT: 10 * time.Millisecond, Reports: 5},
	netip.MustParsePrefix("10.4.0.0/16"): {Throughput: 56_000 / 8, Reports: 1},
	netip.MustParsePrefix("10.5.0.0/16"): {Throughput: 56_000 / 8, Reports: 9, Age: time.Hour},
	netip.MustParsePrefix("10.6.0.0/16"): {Throughput: 50_000_000 / 8, RTT: time.Second, Reports: 5},
}}

func TestDecide(t *testing.T) {
	p := mustParse(t, decidePolicy)
	tests := []struct {
		name    string
		m       msg
		rule    string
		action  Action
		class   string
		skipped string
	}{
		{"blocked host", msg{url: "http://ads.example/x.js"}, "block-ads", Block, "", ""},
		{"blocked subdomain", msg{url: "http://a.b.tracker.example.net/"}, "block-ads", Block, "", ""},
		{"blocked URL pattern", msg{url: "http://cdn.example/ads/2024/b.gif"}, "block-ads", Block, "", ""},
		{"not blocked: other path", msg{url: "http://cdn.example/img/b.gif"}, "", Pass, "", ""},
		{"not blocked: lookalike", msg{url: "http://badads.example/"}, "", Pass, "", ""},
		{"blocklist is reqmod only", msg{svc: Respmod, url: "http://ads.example/", client: "10.3.0.1"}, "", Pass, "fast", ""},
		{"redirect", msg{url: "http://old.example.org/a"}, "old-site", Redirect, "", ""},
		{"redirect exact host only", msg{url: "http://www.old.example.org/a"}, "", Pass, "", ""},
		{"big upload", msg{method: "PUT", url: "http://up.files.example/f", length: "2000000"}, "no-uploads", Block, "", ""},
		{"small upload", msg{method: "PUT", url: "http://up.files.example/f", length: "100"}, "", Pass, "", ""},
		{"upload unknown length", msg{method: "POST", url: "http://files.example/f"}, "", Pass, "", ""},
		{"upload GET", msg{method: "GET", url: "http://files.example/f", length: "2000000"}, "", Pass, "", ""},
		{"admin from LAN", msg{url: "http://intranet/admin/users", client: "192.0.2.9"}, "admin-only", Pass, "", ""},
		{"admin from v6", msg{url: "http://intranet/admin/", client: "2001:db8::5"}, "admin-only", Pass, "", ""},
		{"admin from elsewhere", msg{url: "http://intranet/admin/users", client: "198.51.100.1"}, "admin-denied", Block, "", ""},
		{"admin no client", msg{url: "http://intranet/admin/x"}, "admin-denied", Block, "", ""},
		{"user bare name", msg{url: "http://x/", user: "ldap://corp.example/alice"}, "alice", Pass, "", ""},
		{"user full glob", msg{url: "http://x/", user: "ldap://corp.example/bobby"}, "alice", Pass, "", ""},
		{"user other domain", msg{url: "http://x/", user: "ldap://other.example/bob"}, "", Pass, "", ""},
		{"status", msg{svc: Respmod, url: "http://x/", status: 502}, "errors-tagged", Pass, "", ""},
		{"high rtt html", msg{svc: Respmod, url: "http://x/", client: "10.6.0.1", ctype: "text/html; charset=utf-8"}, "high-rtt", Transcode, "fast", ""},
		{"slow image", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.2.3", ctype: "image/jpeg", length: "50000"}, "slow-images", Transcode, "slow", ""},
		{"slow image too big", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.2.3", ctype: "image/jpeg", length: "20000000"}, "", Pass, "slow", ""},
		{"slow html not slow-images", msg{svc: Respmod, url: "http://x/", client: "10.1.2.3", ctype: "text/html"}, "", Pass, "slow", ""},
		{"medium by throughput", msg{svc: Respmod, url: "http://x/", client: "10.2.0.1", ctype: "text/html"}, "medium-throughput", Transcode, "medium", ""},
		{"fast passes", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.3.0.1", ctype: "image/jpeg"}, "", Pass, "fast", ""},
		{"too few reports", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.4.0.1", ctype: "image/jpeg"}, "unknown-tag", Pass, "unknown", ""},
		{"stale prediction", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.5.0.1", ctype: "image/jpeg"}, "unknown-tag", Pass, "unknown", ""},
		{"no client", msg{svc: Respmod, url: "http://x/a.jpg", ctype: "image/jpeg"}, "unknown-tag", Pass, "unknown", ""},
		{"save-data beats fast prediction", msg{svc: Respmod, url: "http://x/a.png", client: "10.3.0.1", ctype: "image/png", reqHdr: map[string]string{"Save-Data": "on"}, length: "5000"}, "slow-images", Transcode, "slow", ""},
		{"downlink hint beats prediction", msg{svc: Respmod, url: "http://x/a.png", client: "10.3.0.1", ctype: "image/png", reqHdr: map[string]string{"Downlink": "0.1"}, length: "5000"}, "slow-images", Transcode, "slow", ""},
		{"ect hint", msg{svc: Respmod, url: "http://x/a.png", ctype: "image/png", length: "5000", reqHdr: map[string]string{"ECT": "2g"}}, "slow-images", Transcode, "slow", ""},
		{"ect hint rtt", msg{svc: Respmod, url: "http://x/", ctype: "text/html", reqHdr: map[string]string{"ECT": "slow-2g"}}, "high-rtt", Transcode, "slow", ""},
		{"bad hints ignored", msg{svc: Respmod, url: "http://x/", client: "10.3.0.1", ctype: "text/html", reqHdr: map[string]string{"Downlink": "fast", "RTT": "-1", "ECT": "5g"}}, "", Pass, "fast", ""},
		{"rtt hint", msg{svc: Respmod, url: "http://x/", client: "10.3.0.1", ctype: "text/html", reqHdr: map[string]string{"RTT": "900"}}, "high-rtt", Transcode, "fast", ""},
		{"no-transform", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", respHdr: map[string]string{"Cache-Control": "public, No-Transform"}, length: "5000"}, "slow-images", Pass, "slow", "no-transform"},
		{"206", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", status: 206, length: "5000"}, "slow-images", Pass, "slow", "partial"},
		{"content-range", msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", respHdr: map[string]string{"Content-Range": "bytes 0-9/100"}, length: "5000"}, "slow-images", Pass, "slow", "partial"},
		{"type the profile does not name", msg{svc: Respmod, url: "http://x/a.bmp", client: "10.1.0.1", ctype: "image/bmp", length: "5000"}, "slow-images", Pass, "slow", "not named by profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m.build(t)
			d := p.Decide(context.Background(), m, testPredictor)
			if d.Rule != tt.rule || d.Action != tt.action {
				ex := p.Explain(context.Background(), m, testPredictor)
				var b strings.Builder
				ex.WriteTo(&b)
				t.Fatalf("got rule %q action %v, want %q %v\n%s", d.Rule, d.Action, tt.rule, tt.action, b.String())
			}
			if d.Net.Class != tt.class {
				t.Errorf("class = %q, want %q", d.Net.Class, tt.class)
			}
			if !strings.Contains(d.Skipped, tt.skipped) || (tt.skipped == "") != (d.Skipped == "") {
				t.Errorf("skipped = %q, want %q", d.Skipped, tt.skipped)
			}
			if d.Net.Class == "" && d.Vary != nil {
				t.Errorf("vary %q without a class", d.Vary)
			}
			// Explain must agree with Decide (Decide uses the host index,
			// Explain a linear scan).
			ex := p.Explain(context.Background(), m, testPredictor)
			if ex.Decision.Rule != d.Rule || ex.Decision.Action != d.Action {
				t.Errorf("Explain decided %q %v", ex.Decision.Rule, ex.Decision.Action)
			}
		})
	}
}

func TestDecideActions(t *testing.T) {
	p := mustParse(t, decidePolicy)
	ctx := context.Background()

	t.Run("block page", func(t *testing.T) {
		m := msg{url: "http://ads.example/x.js", client: "192.0.2.1"}.build(t)
		d := p.Decide(ctx, m, nil)
		if d.Status != 403 || d.Reason != "advertising" || !d.Modifies(Reqmod) {
			t.Fatalf("decision %+v", d)
		}
		resp, err := p.BlockResponse(&d, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != 403 || !strings.Contains(body, "advertising") || !strings.Contains(body, "block-ads") || !strings.Contains(body, "http://ads.example/x.js") {
			t.Errorf("status %d body %s", resp.StatusCode, body)
		}
	})
	t.Run("block status", func(t *testing.T) {
		d := p.Decide(ctx, msg{method: "POST", url: "http://files.example/", length: "9999999"}.build(t), nil)
		if d.Status != 413 {
			t.Errorf("status %d", d.Status)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		d := p.Decide(ctx, msg{url: "http://old.example.org/"}.build(t), nil)
		resp := d.RedirectResponse(nil)
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://new.example.org/" {
			t.Errorf("redirect %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("request headers", func(t *testing.T) {
		m := msg{url: "http://x/", user: "alice", reqHdr: map[string]string{"Cookie": "a=b"}}.build(t)
		d := p.Decide(ctx, m, nil)
		if !d.Modifies(Reqmod) {
			t.Fatal("header edits not a modification")
		}
		h := m.Header.Clone()
		if !d.ApplyRequest(h) || h.Get("Cookie") != "" || h.Get("X-User-Tier") != "gold" {
			t.Errorf("headers %v", h)
		}
	})
	t.Run("request headers set", func(t *testing.T) {
		m := msg{url: "http://intranet/admin/", client: "192.0.2.3", reqHdr: map[string]string{"X-Admin": "0"}}.build(t)
		d := p.Decide(ctx, m, nil)
		h := m.Header.Clone()
		d.ApplyRequest(h)
		if got := h.Values("X-Admin"); !slices.Equal(got, []string{"1"}) {
			t.Errorf("X-Admin = %q", got)
		}
	})
	t.Run("response headers without network read no vary", func(t *testing.T) {
		m := msg{svc: Respmod, url: "http://x/", status: 503}.build(t)
		d := p.Decide(ctx, m, nil)
		h := m.ResponseHeader.Clone()
		if !d.Modifies(Respmod) || !d.ApplyResponse(h, false) || h.Get("Cache-Control") != "no-store" || h.Get("Vary") != "" {
			t.Errorf("headers %v", h)
		}
	})
	t.Run("response headers with vary", func(t *testing.T) {
		m := msg{svc: Respmod, url: "http://x/", respHdr: map[string]string{"Vary": "Accept-Encoding"}}.build(t)
		d := p.Decide(ctx, m, nil)
		if d.Rule != "unknown-tag" {
			t.Fatalf("rule %q", d.Rule)
		}
		h := m.ResponseHeader.Clone()
		d.ApplyResponse(h, false)
		if got := h.Get("Vary"); got != "Accept-Encoding, Save-Data, Downlink, RTT, ECT" || h.Get("X-Bandwidth") != "unknown" {
			t.Errorf("Vary = %q, headers %v", got, h)
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		m := msg{url: "http://cdn.mirror.example/a.js?v=1"}.build(t)
		d := p.Decide(ctx, m, nil)
		if d.Rule != "mirror" || !d.Modifies(Reqmod) {
			t.Fatalf("%+v", d)
		}
		req, _ := http.NewRequest("GET", "http://cdn.mirror.example/a.js?v=1", nil)
		if !d.RewriteRequest(req) || req.URL.String() != "http://mirror.lan/a.js" || req.Host != "mirror.lan" {
			t.Errorf("rewritten to %s (Host %s)", req.URL, req.Host)
		}
		// In RESPMOD the same rule matches but has nothing to rewrite.
		d = p.Decide(ctx, msg{svc: Respmod, url: "http://cdn.mirror.example/a.js"}.build(t), nil)
		if d.Rule != "mirror" || d.Rewrite != nil || d.Modifies(Respmod) {
			t.Errorf("respmod: %+v", d)
		}
	})
	t.Run("pass is 204", func(t *testing.T) {
		d := p.Decide(ctx, msg{url: "http://plain.example/"}.build(t), nil)
		if d.Modifies(Reqmod) || d.Rule != "" {
			t.Errorf("%+v", d)
		}
	})
	t.Run("transcode webp and vary accept", func(t *testing.T) {
		for _, tc := range []struct {
			accept, format string
		}{{"image/webp,*/*", "webp"}, {"image/png,*/*", "keep"}, {"image/webp;q=0", "keep"}} {
			m := msg{svc: Respmod, url: "http://x/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", length: "5000", reqHdr: map[string]string{"Accept": tc.accept}}.build(t)
			d := p.Decide(ctx, m, testPredictor)
			if d.Action != Transcode || d.ImageFormat != tc.format || d.Profile.Name != "light" {
				t.Errorf("Accept %q: %v %q", tc.accept, d.Action, d.ImageFormat)
			}
			if !slices.Equal(d.Vary, []string{"Save-Data", "Downlink", "RTT", "ECT", "Accept"}) {
				t.Errorf("Vary %q", d.Vary)
			}
			h := http.Header{}
			if !d.ApplyResponse(h, true) || h.Get("Vary") != "Save-Data, Downlink, RTT, ECT, Accept" {
				t.Errorf("Vary header %q", h.Get("Vary"))
			}
		}
	})
}

func TestPriority(t *testing.T) {
	p := mustParse(t, `
[[rules]]
name = "generic"
match.path = ["/a/*"]
action = "pass"

[[rules]]
name = "urgent"
priority = 5
match.path = ["/a/secret"]
action = "block"
`)
	if got := p.Rules(); !slices.Equal(got, []string{"urgent", "generic"}) {
		t.Fatalf("order %q", got)
	}
	d := p.Decide(context.Background(), msg{url: "http://h/a/secret"}.build(t), nil)
	if d.Rule != "urgent" {
		t.Errorf("rule %q", d.Rule)
	}
}

func TestHintsDisabled(t *testing.T) {
	p := mustParse(t, `
[bandwidth]
client_hints = false

[[rules]]
name = "slow"
match.bandwidth = ["slow"]
action = "block"
`)
	m := msg{url: "http://x/", reqHdr: map[string]string{"Save-Data": "on"}}.build(t)
	d := p.Decide(context.Background(), m, nil)
	if d.Rule != "" || d.Net.Class != ClassUnknown || d.Vary != nil {
		t.Errorf("hints were read: %+v", d)
	}
	m = msg{url: "http://x/", client: "10.1.0.1"}.build(t)
	if d := p.Decide(context.Background(), m, testPredictor); d.Rule != "slow" {
		t.Errorf("prediction not used: %+v", d)
	}
}

func TestNewMessage(t *testing.T) {
	req, _ := http.NewRequest("GET", "http://Example.COM:8080/p?q=1", nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"Image/JPEG; q=1"}, "Content-Length": {"123"}}}
	icap := http.Header{"X-Client-Ip": {"::ffff:10.0.0.1"}, "X-Authenticated-User": {base64.StdEncoding.EncodeToString([]byte("ldap://corp/alice"))}}
	m := NewMessage(Respmod, req, resp, icap)
	if m.Host != "example.com" || m.ContentType != "image/jpeg" || m.ContentLength != 123 || m.ClientIP != netip.MustParseAddr("10.0.0.1") || m.User != "ldap://corp/alice" || m.Status != 200 {
		t.Errorf("%+v", m)
	}
	m = NewMessage(Reqmod, &http.Request{Method: "get", Host: "[2001:db8::1]:80", URL: &url.URL{Path: "/x"}}, nil, nil)
	if m.Host != "2001:db8::1" || m.Method != "GET" || m.ContentLength != -1 || m.ClientIP.IsValid() {
		t.Errorf("%+v", m)
	}
	if got := DecodeUser("not base64!"); got != "not base64!" {
		t.Errorf("DecodeUser = %q", got)
	}
}
