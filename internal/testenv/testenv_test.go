package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestListenAndFreeAddr(t *testing.T) {
	ln := Listen(t)
	if a := ln.Addr().(*net.TCPAddr); !a.IP.IsLoopback() || a.Port == 0 {
		t.Fatalf("Listen address %v, want a loopback address with a port", a)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial the listener: %v", err)
	}
	c.Close()

	addr := FreeAddr(t)
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s cannot be bound: %v", addr, err)
	}
	l2.Close()
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	Poll(t, 10*time.Second, "third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

// TestCPUTime burns CPU until the process's CPU time has grown: it
// must, or benchmarks would report zero CPU per operation.
func TestCPUTime(t *testing.T) {
	start := CPUTime()
	if start <= 0 {
		t.Fatalf("CPUTime %v at the start of a test", start)
	}
	x := uint64(1)
	Poll(t, 10*time.Second, "the process's CPU time to grow", func() bool {
		for i := 0; i < 1e6; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		return CPUTime() > start
	})
	if x == 0 {
		t.Log(x) // keep the loop
	}
}

// TestReadCorpus reads a corpus file whole, as os.ReadFile does.
func TestReadCorpus(t *testing.T) {
	got := ReadCorpus(t, "images", "README.md")
	want, err := os.ReadFile(filepath.Join(Corpus(t, "images"), "README.md"))
	if err != nil || len(got) == 0 || string(got) != string(want) {
		t.Errorf("ReadCorpus: %d bytes; os.ReadFile: %d bytes, %v", len(got), len(want), err)
	}
}
