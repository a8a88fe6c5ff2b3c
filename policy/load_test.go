package policy

import (
	"errors"
	"strings"
	"testing"
)

// A valid preamble the error cases build on: classes, a profile, a list.
const preamble = `
[profiles.p.image]
max_width = 100

[blocklists.ads]
hosts = ["ads.example"]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int    // line of the first error; 0: do not check
		key  string // key of the first error
		msg  string // substring of the message
	}{
		{"unknown top-level key", "colour = 1\n", 1, "colour", "unknown key"},
		{"unknown rule key", "[[rules]]\nname = \"a\"\naction = \"pass\"\n\n[[rules]]\nname = \"b\"\nactoin = \"pass\"\n", 7, "rules[1].actoin", "unknown key"},
		{"unknown match key", "[[rules]]\nname = \"a\"\nmatch.hots = [\"x\"]\naction = \"pass\"\n", 3, "rules[0].match.hots", "unknown key"},
		{"unknown key in sub-table", "[[rules]]\nname = \"a\"\naction = \"pass\"\n[rules.match]\nservice = [\"reqmod\"]\nfoo = 1\n", 6, "rules[0].match.foo", "unknown key"},
		{"wrong type", "[[rules]]\nname = \"a\"\nmatch.status = \"200\"\naction = \"pass\"\n", 3, "", "incompatible types"},
		{"bad bandwidth", "[bandwidth]\n[[bandwidth.classes]]\nname = \"slow\"\nbelow = \"256kbyte\"\n", 4, "", "unknown unit"},
		{"bare number bandwidth", "[[rules]]\nname = \"a\"\nmatch.min_throughput = \"100\"\naction = \"pass\"\n", 3, "", "unknown unit"},
		{"bad duration", "[[rules]]\nname = \"a\"\nmatch.min_rtt = \"fast\"\naction = \"pass\"\n", 3, "", "invalid duration"},
		{"unknown profile", preamble + "[[rules]]\nname = \"t\"\naction = \"transcode\"\nprofile = \"heavy\"\n", 10, "rules[0].profile", `unknown profile "heavy"`},
		{"transcode without profile", "[[rules]]\nname = \"t\"\naction = \"transcode\"\n", 1, "rules[0].profile", "needs a profile"},
		{"transcode reqmod only", preamble + "[[rules]]\nname = \"t\"\nmatch.service = [\"reqmod\"]\naction = \"transcode\"\nprofile = \"p\"\n", 9, "rules[0].match.service", "responses"},
		{"bad glob", "[[rules]]\nname = \"a\"\nmatch.path = [\"/ads/[x\"]\naction = \"pass\"\n", 3, "rules[0].match.path", "unclosed"},
		{"bad CIDR", "[[rules]]\nname = \"a\"\nmatch.client = [\"10.0.0.0/33\"]\naction = \"pass\"\n", 3, "rules[0].match.client", "10.0.0.0/33"},
		{"CIDR host bits", "[[rules]]\nname = \"a\"\nmatch.client = [\"10.0.0.1/8\"]\naction = \"pass\"\n", 3, "rules[0].match.client", "did you mean 10.0.0.0/8"},
		{"bad client address", "[[rules]]\nname = \"a\"\nmatch.client = [\"nope\"]\naction = \"pass\"\n", 3, "rules[0].match.client", "not an address"},
		{"unknown class", "[[rules]]\nname = \"a\"\nmatch.bandwidth = [\"warp\"]\naction = \"pass\"\n", 3, "rules[0].match.bandwidth", `unknown class "warp"`},
		{"unknown blocklist", "[[rules]]\nname = \"a\"\nmatch.blocklist = [\"ads\"]\naction = \"block\"\n", 3, "rules[0].match.blocklist", "unknown block list"},
		{"unknown service", "[[rules]]\nname = \"a\"\nmatch.service = [\"optionz\"]\naction = \"pass\"\n", 3, "rules[0].match.service", "unknown service"},
		{"unknown action", "[[rules]]\nname = \"a\"\naction = \"allow\"\n", 3, "rules[0].action", "unknown action"},
		{"missing name", "[[rules]]\naction = \"pass\"\n", 1, "rules[0].name", "missing rule name"},
		{"duplicate name", "[[rules]]\nname = \"a\"\nmatch.method = [\"GET\"]\naction = \"pass\"\n[[rules]]\nname = \"a\"\nmatch.method = [\"PUT\"]\naction = \"pass\"\n", 6, "rules[1].name", "duplicate rule name"},
		{"redirect without location", "[[rules]]\nname = \"r\"\naction = \"redirect\"\n", 1, "rules[0].location", "absolute URL"},
		{"redirect bad status", "[[rules]]\nname = \"r\"\naction = \"redirect\"\nlocation = \"https://x/\"\nstatus = 200\n", 5, "rules[0].status", "3xx"},
		{"block bad status", "[[rules]]\nname = \"b\"\naction = \"block\"\nstatus = 302\n", 4, "rules[0].status", "4xx or 5xx"},
		{"reason on pass", "[[rules]]\nname = \"b\"\naction = \"pass\"\nreason = \"x\"\n", 4, "rules[0].reason", "for action block"},
		{"bad header name", "[[rules]]\nname = \"h\"\naction = \"pass\"\nresponse_headers.set = { \"X Bad\" = \"1\" }\n", 4, "rules[0].response_headers", "invalid character"},
		{"bad content type", "[[rules]]\nname = \"c\"\nmatch.content_type = [\"image\"]\naction = \"pass\"\n", 3, "rules[0].match.content_type", "bad media type"},
		{"host with port", "[[rules]]\nname = \"c\"\nmatch.host = [\"example.com:80\"]\naction = \"pass\"\n", 3, "rules[0].match.host", "without port"},
		{"host trailing dot", "[[rules]]\nname = \"c\"\nmatch.host = [\"example.com.\"]\naction = \"pass\"\n", 3, "rules[0].match.host", "lower-case host name"},
		{"host empty label", "[[rules]]\nname = \"c\"\nmatch.host = [\"..example.com\"]\naction = \"pass\"\n", 3, "rules[0].match.host", "lower-case host name"},
		{"rewrite on block", "[[rules]]\nname = \"b\"\naction = \"block\"\nrewrite.host = \"m.lan\"\n", 4, "rules[0].rewrite", "for action pass"},
		{"rewrite respmod only", "[[rules]]\nname = \"b\"\nmatch.service = [\"respmod\"]\naction = \"pass\"\nrewrite.host = \"m.lan\"\n", 5, "rules[0].rewrite", "respmod only"},
		{"rewrite bad host", "[[rules]]\nname = \"b\"\naction = \"pass\"\nrewrite.host = \"M.lan/x\"\n", 4, "rules[0].rewrite", "lower-case host"},
		{"host star", "[[rules]]\nname = \"c\"\nmatch.host = [\"*.example.com\"]\naction = \"pass\"\n", 3, "rules[0].match.host", `".example.com"`},
		{"empty length range", "[[rules]]\nname = \"c\"\nmatch.min_content_length = 10\nmatch.max_content_length = 5\naction = \"pass\"\n", 4, "rules[0].match.max_content_length", "empty range"},
		{"empty throughput range", "[[rules]]\nname = \"c\"\nmatch.min_throughput = \"1Mbit\"\nmatch.max_throughput = \"1Mbit\"\naction = \"pass\"\n", 4, "rules[0].match.max_throughput", "empty range"},
		{"classes out of order", "[bandwidth]\n[[bandwidth.classes]]\nname = \"a\"\nbelow = \"1Mbit\"\n[[bandwidth.classes]]\nname = \"b\"\nbelow = \"1kbit\"\n[[bandwidth.classes]]\nname = \"c\"\n", 7, "bandwidth.classes[1].below", "increasing"},
		{"class unknown reserved", "[bandwidth]\n[[bandwidth.classes]]\nname = \"unknown\"\n", 3, "bandwidth.classes[0].name", "reserved"},
		{"last class bounded", "[bandwidth]\n[[bandwidth.classes]]\nname = \"a\"\nbelow = \"1Mbit\"\n", 4, "bandwidth.classes[0].below", "last class"},
		{"save_data unknown class", "[bandwidth]\nsave_data = \"glacial\"\n", 2, "bandwidth.save_data", "unknown class"},
		{"profile bad quality", "[profiles.p.image]\nquality = 101\n", 2, "profiles.p.image.quality", "1 to 100"},
		{"profile bad format", "[profiles.p.image]\nformat = \"bmp\"\n", 2, "profiles.p.image.format", "unknown format"},
		{"profile bad gif", "[profiles.p.image]\ngif = \"loop\"\n", 2, "profiles.p.image.gif", "gif policy"},
		{"profile empty", "[profiles.p]\n", 1, "profiles.p", "no section"},
		{"profile bad encoding", "[profiles.p.compression]\nencoding = \"zstd\"\n", 2, "profiles.p.compression.encoding", "unknown encoding"},
		{"blocklist bad domain", "[blocklists.x]\nhosts = [\"bad domain\"]\n", 1, "blocklists.x", "invalid domain"},
		{"blocklist missing file", "[blocklists.x]\nfiles = [\"/nonexistent/list\"]\n", 1, "blocklists.x", "no such file"},
		{"syntax error", "[[rules]\nname = 1\n", 2, "", "expected"},
		{"shadowed rule", "[[rules]]\nname = \"all-images\"\nmatch.content_type = [\"image/*\"]\naction = \"pass\"\n\n[[rules]]\nname = \"jpegs\"\nmatch.content_type = [\"image/jpeg\"]\nmatch.host = [\"example.com\"]\naction = \"block\"\n", 6, "rules[1]", `rule "jpegs" can never match: rule "all-images" (line 1)`},
		{"shadowed by domain", "[[rules]]\nname = \"dom\"\nmatch.host = [\".example.com\"]\naction = \"pass\"\n\n[[rules]]\nname = \"sub\"\nmatch.host = [\"a.example.com\"]\nmatch.method = [\"GET\"]\naction = \"block\"\n", 6, "rules[1]", "can never match"},
		{"shadowed by CIDR", "[[rules]]\nname = \"net\"\nmatch.client = [\"10.0.0.0/8\"]\naction = \"pass\"\n\n[[rules]]\nname = \"host\"\nmatch.client = [\"10.1.2.3\"]\naction = \"block\"\n", 6, "rules[1]", "can never match"},
		{"shadowed by priority", "[[rules]]\nname = \"later\"\nmatch.path = [\"/a/b\"]\naction = \"block\"\n\n[[rules]]\nname = \"first\"\npriority = 10\nmatch.path = [\"/a/*\"]\naction = \"pass\"\n", 1, "rules[0]", `rule "first" (line 6)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("test.toml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; rules %q", p.Rules())
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *policy.Error", err, err)
			}
			if pe.File != "test.toml" {
				t.Errorf("file = %q", pe.File)
			}
			if tt.line != 0 && pe.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", pe.Line, tt.line, err)
			}
			if tt.key != "" && pe.Key != tt.key {
				t.Errorf("key = %q, want %q (%v)", pe.Key, tt.key, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

// Rules that overlap without one covering the other are fine.
func TestParseNotShadowed(t *testing.T) {
	src := `
[[rules]]
name = "jpeg-example"
match.host = ["example.com"]
match.content_type = ["image/jpeg"]
action = "pass"

[[rules]]
name = "images"
match.content_type = ["image/*"]
action = "block"

[[rules]]
name = "sub-example"
match.host = [".example.com"]
action = "block"
`
	if _, err := Parse("", []byte(src)); err != nil {
		t.Fatal(err)
	}
}

func TestParseReportsAllErrors(t *testing.T) {
	src := "a = 1\nb = 2\n[[rules]]\nname = \"x\"\naction = \"nope\"\n"
	_, err := Parse("f.toml", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"f.toml:1: a: unknown key", "f.toml:2: b: unknown key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from\n%v", want, err)
		}
	}
}

func TestParseWarnings(t *testing.T) {
	src := "[[rules]]\nname = \"b\"\naction = \"block\"\nresponse_headers.set = { X = \"1\" }\n"
	p, err := Parse("w.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "w.toml:1: rules[0]: header edits are ignored by action block") {
		t.Errorf("warnings = %q", p.Warnings)
	}
}

func TestParseBandwidth(t *testing.T) {
	tests := []struct {
		in   string
		want BitRate
		err  bool
	}{
		{"56kbit", 56_000, false},
		{"2Mbit", 2_000_000, false},
		{"1.5Mbit", 1_500_000, false},
		{"256kbps", 256_000, false},
		{"10Gbit/s", 10_000_000_000, false},
		{"512bit", 512, false},
		{" 100 kbit ", 100_000, false},
		{"100", 0, true},
		{"kbit", 0, true},
		{"56kB", 0, false}, // "kB" reads as kbit: units are bits
		{"56kbyte", 0, true},
		{"0kbit", 0, true},
		{"1.2.3Mbit", 0, true},
		{"-5kbit", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseBandwidth(tt.in)
		if tt.err != (err != nil) {
			t.Errorf("ParseBandwidth(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if !tt.err && tt.want != 0 && got != tt.want {
			t.Errorf("ParseBandwidth(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	for _, r := range []BitRate{56_000, 1_500_000, 10_000_000_000, 512} {
		back, err := ParseBandwidth(r.String())
		if err != nil || back != r {
			t.Errorf("round trip %d → %q → %d, %v", r, r.String(), back, err)
		}
	}
}
