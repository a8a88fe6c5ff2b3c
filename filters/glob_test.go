package filters

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		in      string
		want    bool
	}{
		{"/ads/*", "/ads/2024/banner.gif", true},
		{"/ads/*", "/ads", false},
		{"/ads/*", "/img/ads/x", false},
		{"*.gif", "/a/b.gif", true},
		{"*.gif", "/a/b.gifx", false},
		{"*track*", "/x/tracker.js", true},
		{"*track*", "/x/trac.js", false},
		{"/exact", "/exact", true},
		{"/exact", "/exact/", false},
		{"*", "", true},
		{"/a?c", "/abc", true},
		{"/a?c", "/ac", false},
		{"/v[0-9]/*", "/v2/x", true},
		{"/v[0-9]/*", "/vx/x", false},
		{"/v[!0-9]/*", "/vx/x", true},
		{"/v[!0-9]/*", "/v1/x", false},
		{`/a\*b`, "/a*b", true},
		{`/a\*b`, "/axb", false},
		{"/a.b", "/aXb", false}, // '.' is literal
		{"/a*/c*", "/ab/cd", true},
		{"/a*/c*", "/ab/d", false},
		{"/a(b)+", "/a(b)+", true}, // regexp metacharacters are literal
	}
	for _, tt := range tests {
		g, err := CompileGlob(tt.pattern)
		if err != nil {
			t.Fatalf("CompileGlob(%q): %v", tt.pattern, err)
		}
		if got := g.Match(tt.in); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pattern, tt.in, got, tt.want)
		}
	}
}

func TestGlobErrors(t *testing.T) {
	for _, p := range []string{"", "/a[", "/a[]", "/a[!]", `/a\`, "/[z-a]"} {
		if _, err := CompileGlob(p); err == nil {
			t.Errorf("CompileGlob(%q) succeeded", p)
		}
	}
}

func TestGlobCovers(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"*", "/anything[0-9]", true},
		{"/a/*", "/a/b/*", true},
		{"/a/*", "/a/b", true},
		{"/a/b/*", "/a/*", false},
		{"*.gif", "*/x.gif", true},
		{"*.gif", "*.png", false},
		{"*ad*", "/ads/*", true},
		{"/x", "/x", true},
		{"/v[0-9]", "/v1", true},
		{"/v[0-9]", "/v[0-5]", false}, // true, but not proven: conservative
	}
	for _, tt := range tests {
		if got := MustCompileGlob(tt.a).Covers(MustCompileGlob(tt.b)); got != tt.want {
			t.Errorf("%q covers %q = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestGlobPrefix(t *testing.T) {
	for p, want := range map[string]string{"/ads/*.gif": "/ads/", "*.gif": "", "/x": "/x", "/a[bc]": "/a", `/a\*`: "/a"} {
		if got := MustCompileGlob(p).Prefix(); got != want {
			t.Errorf("%q.Prefix() = %q, want %q", p, got, want)
		}
	}
}

func BenchmarkGlobMatch(b *testing.B) {
	for _, p := range []string{"/ads/*", "/v[0-9]/*.gif"} {
		g := MustCompileGlob(p)
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Match("/v2/ads/banner.gif")
			}
		})
	}
}

// FuzzCompileGlob: any pattern either fails to compile or gives a glob
// that never panics, matches its own literal text when it has no
// metacharacter, and whose prefix starts every match.
func FuzzCompileGlob(f *testing.F) {
	for _, s := range []string{"/ads/*", "*.gif", "/v[0-9]/*", `/a\*`, "[!a-", "*a*", "?"} {
		f.Add(s, "/ads/v1/x.gif")
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := CompileGlob(pattern)
		if err != nil {
			return
		}
		if g.Literal() && !g.Match(pattern) {
			t.Fatalf("literal %q does not match itself", pattern)
		}
		if g.Match(s) && !strings.HasPrefix(s, g.Prefix()) {
			t.Fatalf("%q matches %q without its prefix %q", pattern, s, g.Prefix())
		}
		if g.Covers(g) != true {
			t.Fatalf("%q does not cover itself", pattern)
		}
	})
}
