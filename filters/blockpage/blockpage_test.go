package blockpage

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name.golden (or rewrites it with
// -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from %s:\n%s", name, path, got)
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		page Page
		data Data
	}{
		{"default", Page{}, Data{Status: 403, Reason: "advertising", Rule: "block-ads", URL: "http://ads.example/x.js", Host: "ads.example", ClientIP: "192.0.2.1"}},
		{"escaped", Page{}, Data{Status: 451, Reason: `<script>alert("x")</script>`, Rule: "r&d", URL: "http://e.example/?q=<b>"}},
		{"no-rule-no-reason", Page{}, Data{}},
		{"custom", Page{TemplateFile: filepath.Join("testdata", "custom.tmpl")}, Data{Status: 403, Reason: "policy", Rule: "r1", Host: "h.example", ClientIP: "10.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.page
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := p.Render(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, got)
		})
	}
}

func TestResponse(t *testing.T) {
	var p Page
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	resp, err := p.Response(nil, Data{Status: 451, Reason: "legal", Rule: "r"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 451 || resp.Status != "451 Unavailable For Legal Reasons" ||
		resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.ContentLength != int64(len(body)) || !strings.Contains(string(body), "legal") {
		t.Errorf("%d %q %v len %d", resp.StatusCode, resp.Status, resp.Header, resp.ContentLength)
	}
	resp, _ = p.Response(nil, Data{})
	if resp.StatusCode != DefaultStatus {
		t.Errorf("default status %d", resp.StatusCode)
	}
}

func TestValidateErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		page Page
		msg  string
	}{
		{Page{TemplateFile: filepath.Join(dir, "missing")}, "no such file"},
		{Page{TemplateFile: write("syntax.tmpl", "{{.Status")}, "unclosed action"},
		{Page{TemplateFile: write("field.tmpl", "{{.Nope}}")}, "Nope"},
		{Page{MaxBytes: -1}, "max_bytes"},
	}
	for _, tt := range tests {
		err := tt.page.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%+v: error %v, want %q", tt.page, err, tt.msg)
		}
	}
	p := Page{MaxBytes: 100}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Render(Data{Reason: "x"}); err == nil || !strings.Contains(err.Error(), "over max_bytes 100") {
		t.Errorf("render over the limit: %v", err)
	}
	var unvalidated Page
	if _, err := unvalidated.Render(Data{}); err == nil {
		t.Error("Render before Validate succeeded")
	}
}
