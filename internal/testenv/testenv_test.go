package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModuleRootHoldsGoMod(t *testing.T) {
	root := ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("ModuleRoot %q has no go.mod: %v", root, err)
	}
}

func TestLookPathFindsSh(t *testing.T) {
	if p := LookPath(t, "sh", "dash"); !filepath.IsAbs(p) {
		t.Fatalf("LookPath(sh) = %q, want an absolute path", p)
	}
}
