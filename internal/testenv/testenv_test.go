package testenv

import (
	"os"
	"path/filepath"
	"strings"
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

func TestBuildOnce(t *testing.T) {
	var b BuildOnce
	dir := b.Dir(t, "", "./bench/icaplimit")
	fi, err := os.Stat(filepath.Join(dir, "icaplimit"))
	if err != nil {
		t.Fatalf("built binary: %v", err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable: %v", fi.Name(), fi.Mode())
	}
	if again := b.Dir(t, "", "./no/such/pkg"); again != dir {
		t.Errorf("second Dir = %q, want the first build's %q", again, dir)
	}
	b.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after Remove, stat %s: %v, want not exist", dir, err)
	}
}

func TestGoBuildReportsCompilerOutput(t *testing.T) {
	LookPath(t, "go", "golang")
	err := GoBuild(ModuleRoot(t), filepath.Join(t.TempDir(), "x"), "./no/such/pkg", "")
	if err == nil || !strings.Contains(err.Error(), "go build ./no/such/pkg") || !strings.Contains(err.Error(), "\n") {
		t.Fatalf("GoBuild of a missing package: %v, want an error naming it, with the compiler's output", err)
	}
}
