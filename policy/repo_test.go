package policy

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// TestRepositoryPolicy loads the repository's default policy.toml, which
// `go run ./cmd/icapd` uses with no flags.
func TestRepositoryPolicy(t *testing.T) {
	path := filepath.Join(testenv.ModuleRoot(t), "policy.toml")
	p, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) > 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
	if len(p.Rules()) == 0 || p.Profile("light") == nil || p.Profile("tiny") == nil {
		t.Fatalf("rules %q, profiles light=%v tiny=%v", p.Rules(), p.Profile("light"), p.Profile("tiny"))
	}
	if err := CheckFile(path); err != nil {
		t.Fatal(err)
	}
}

// The default policy does what its comments say.
func TestRepositoryPolicyDecisions(t *testing.T) {
	p, err := LoadFile(filepath.Join(testenv.ModuleRoot(t), "policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		m       msg
		action  Action
		profile string
	}{
		{"fast client image", msg{svc: Respmod, url: "http://e.example/a.jpg", client: "10.3.0.1", ctype: "image/jpeg"}, Pass, ""},
		{"slow client image", msg{svc: Respmod, url: "http://e.example/a.jpg", client: "10.1.0.1", ctype: "image/jpeg"}, Transcode, "tiny"},
		{"save-data page", msg{svc: Respmod, url: "http://e.example/", ctype: "text/html", reqHdr: map[string]string{"Save-Data": "on"}}, Transcode, "tiny"},
		{"medium page", msg{svc: Respmod, url: "http://e.example/", client: "10.2.0.1", ctype: "text/html"}, Transcode, "light"},
		{"medium by hint", msg{svc: Respmod, url: "http://e.example/", ctype: "text/html", reqHdr: map[string]string{"Downlink": "1.2"}}, Transcode, "light"},
		{"slow but no-transform", msg{svc: Respmod, url: "http://e.example/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", respHdr: map[string]string{"Cache-Control": "no-transform"}}, Pass, ""},
		{"slow but partial", msg{svc: Respmod, url: "http://e.example/a.jpg", client: "10.1.0.1", ctype: "image/jpeg", status: 206}, Pass, ""},
		{"slow video", msg{svc: Respmod, url: "http://e.example/v.mp4", client: "10.1.0.1", ctype: "video/mp4"}, Pass, ""},
		{"unknown client", msg{svc: Respmod, url: "http://e.example/a.jpg", ctype: "image/jpeg"}, Pass, ""},
		{"requests pass", msg{url: "http://e.example/", client: "10.1.0.1"}, Pass, ""},
	}
	// min_reports = 2 in the file: testPredictor's prefixes have 5.
	for _, tt := range tests {
		d := p.Decide(context.Background(), tt.m.build(t), testPredictor)
		got := ""
		if d.Profile != nil {
			got = d.Profile.Name
		}
		if d.Action != tt.action || got != tt.profile {
			t.Errorf("%s: %v %q (rule %q, skipped %q), want %v %q", tt.name, d.Action, got, d.Rule, d.Skipped, tt.action, tt.profile)
		}
	}
}
