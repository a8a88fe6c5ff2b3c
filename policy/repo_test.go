package policy

import (
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
