package policy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/check/*.policytest")

const goldenSep = "----------\n"

// TestCheckGolden runs each testdata/check/*.policytest, in the layout of
// Caddy's caddyfile_adapt tests: a policy, a separator line, then what
// `icapd -check-policy` prints for it (every error, one a line, or "ok"
// and the rule order). go test -update rewrites the expected half.
func TestCheckGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "check", "*.policytest"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src, want, ok := strings.Cut(string(b), goldenSep)
			if !ok {
				t.Fatalf("no %q separator", strings.TrimSpace(goldenSep))
			}
			var got string
			p, err := Parse("policy.toml", []byte(src))
			if err != nil {
				got = err.Error() + "\n"
			} else {
				got = "ok: " + strings.Join(p.Rules(), ", ") + "\n"
			}
			if *update {
				if err := os.WriteFile(path, []byte(src+goldenSep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("got:\n%swant:\n%s", got, want)
			}
		})
	}
}
