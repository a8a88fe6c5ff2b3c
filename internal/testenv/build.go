package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// GoBuild runs "go build -o out [-tags tags] pkg" in the module at root,
// and returns an error carrying the compiler's output when that fails.
func GoBuild(root, out, pkg, tags string) error {
	args := []string{"build", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// BuildOnce builds main packages of this module once per test binary into
// a temporary directory, so that tests running the real commands share one
// build. Declare it as a package variable and call Remove from TestMain
// after m.Run. The zero value is ready to use.
type BuildOnce struct {
	once sync.Once
	dir  string
	err  error
}

// Dir builds pkgs (module-relative main packages such as "./cmd/icapd")
// with build tags (comma-separated; "" for none) on its first call and
// returns the directory holding the binaries, each named after the last
// element of its package path. Later calls return the first call's result
// whatever their arguments. Dir skips the test without the go command
// (fails it under CI), and fails it when a build failed.
func (b *BuildOnce) Dir(t testing.TB, tags string, pkgs ...string) string {
	t.Helper()
	LookPath(t, "go", "golang")
	root := ModuleRoot(t)
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "testenv-bin-"); b.err != nil {
			return
		}
		for _, pkg := range pkgs {
			if b.err = GoBuild(root, filepath.Join(b.dir, path.Base(pkg)), pkg, tags); b.err != nil {
				return
			}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.dir
}

// Remove deletes the binaries Dir built, if any.
func (b *BuildOnce) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
