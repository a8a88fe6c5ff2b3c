// Package testenv lets tests that need a real component (a Debian program,
// root, the shared corpus) skip cleanly on a developer's machine and fail on
// CI, where everything is installed.
//
// CI sets CI=true; under it every "skip" here becomes a test failure, so a
// missing install step in .ci/run cannot hide behind a skipped test.
//
// It also holds the helpers several test packages share, so that each
// has one copy: building the module's commands once per test binary
// (BuildOnce), loopback listeners and addresses (Listen, FreeAddr,
// FreePort), polling a condition with a deadline (Poll), an HTTP GET
// (Get), a goroutine-safe buffer (SyncBuffer), reading a corpus file
// (ReadCorpus) and the process's CPU time for benchmarks (CPUTime).
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where every
// dependency is expected to be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test with reason, or fails it under CI.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required in CI (CI=true): %s", reason)
	}
	t.Skip(reason)
}

// LookPath returns the absolute path of the program name, or skips the test
// (fails it under CI) with the Debian package that provides it.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, name+" not found: apt-get install -y "+debianPackage)
	}
	return p
}

// RequireRoot skips the test (fails it under CI) unless it runs as root,
// which capture and network namespace tests need.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (packet capture / network namespaces)")
	}
}

// ModuleRoot returns the directory holding go.mod, searched upwards from
// the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Corpus returns the path of ../shared/corpus/<sub> next to the repository,
// or skips the test (fails it under CI) when it is absent. The corpus is
// never copied into the project.
func Corpus(t testing.TB, sub string) string {
	t.Helper()
	p := filepath.Join(ModuleRoot(t), "..", "shared", "corpus", sub)
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "corpus not found at "+p)
	}
	return p
}

// ReadCorpus returns the contents of the file name in the shared
// corpus's folder sub (see Corpus), failing the test if it cannot be
// read.
func ReadCorpus(t testing.TB, sub, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Corpus(t, sub), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
