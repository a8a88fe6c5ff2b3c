package icapd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogFileFlushes checks that a buffered line reaches the file without
// Close (the ticker flushes it) and that Close flushes the rest.
func TestLogFileFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := openLogFile(path, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("first\n"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == "first\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("line not flushed by the ticker: file has %q", b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Write([]byte("second\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got := strings.Count(string(b), "\n"); got != 2 {
		t.Errorf("after Close the file has %q, want two lines", b)
	}
}
