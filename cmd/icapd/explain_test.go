package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// TestExplain asks the repository's policy why messages get their
// decision.
func TestExplain(t *testing.T) {
	repo := filepath.Join(testenv.ModuleRoot(t), "policy.toml")
	tests := []struct {
		name string
		args []string
		code int
		want []string // regexps, in this order
	}{
		{name: "slow image", code: 0,
			args: []string{"-url", "http://example.com/a.jpg", "-client-ip", "10.0.0.7", "-bandwidth", "56kbit", "-content-type", "image/jpeg"},
			want: []string{
				`policy ` + regexp.QuoteMeta(repo) + ` \(version \S+\)`,
				`rule "fast-clients-pass" \(line \d+\): no: bandwidth: want fast, client is slow`,
				`rule "partial-content-pass" \(line \d+\): no: status: want 206, message has 200`,
				`rule "slow-tiny" \(line \d+\): MATCH`,
				`client network: class slow \(from prediction\), throughput 56kbit`,
				`decision: transcode by rule "slow-tiny" \(line \d+\), profile "tiny"`,
				`vary: Save-Data, Downlink, RTT, ECT`,
			}},
		{name: "fast reqmod", code: 0,
			args: []string{"-url", "http://example.com/", "-client-ip", "10.0.0.7", "-bandwidth", "20Mbit"},
			want: []string{`rule "fast-clients-pass" \(line \d+\): MATCH`, `decision: pass by rule "fast-clients-pass"`}},
		{name: "save-data header", code: 0,
			args: []string{"-url", "http://example.com/p.html", "-header", "Save-Data: on", "-content-type", "text/html"},
			want: []string{`class slow \(from Save-Data\)`, `decision: transcode by rule "slow-tiny"`}},
		{name: "unknown client", code: 0,
			args: []string{"-url", "http://example.com/a.jpg", "-service", "respmod", "-content-type", "image/jpeg"},
			want: []string{`rule "fast-clients-pass" \(line \d+\): no: bandwidth: want fast, client is unknown`, `decision: pass \(no rule matched\)`}},
		{name: "no-transform", code: 0,
			args: []string{"-url", "http://example.com/a.jpg", "-bandwidth", "56kbit", "-content-type", "image/jpeg", "-header", "Cache-Control: no-transform"},
			want: []string{`not transformed: .*no-transform`}},
		{name: "no url", code: 2, args: []string{"-client-ip", "10.0.0.7"}, want: []string{`Usage: icapd explain`}},
		{name: "bad bandwidth", code: 2, args: []string{"-url", "http://example.com/", "-bandwidth", "fast"}, want: []string{`-bandwidth`}},
		{name: "bad service", code: 2, args: []string{"-url", "http://example.com/", "-service", "echo"}, want: []string{`-service "echo"`}},
		{name: "bad header", code: 2, args: []string{"-url", "http://example.com/", "-header", "nocolon"}, want: []string{`Name: value`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runInOrder(t, tt.code, tt.want, append([]string{"explain", "-policy", repo}, tt.args...)...)
		})
	}
}

// TestExplainBuiltinPolicy: with no -policy and no ./policy.toml, explain
// uses the built-in copy of the repository's policy.
func TestExplainBuiltinPolicy(t *testing.T) {
	t.Chdir(t.TempDir())
	code, stdout, stderr := run(t, "explain", "-url", "http://example.com/", "-bandwidth", "20Mbit")
	if code != 0 || !strings.HasPrefix(stdout, "policy built-in policy.toml") || !strings.Contains(stdout, `"fast-clients-pass"`) {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}
