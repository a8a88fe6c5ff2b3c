package icapd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
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
	testenv.Poll(t, 10*time.Second, "the ticker to flush the line", func() bool {
		b, _ := os.ReadFile(path)
		return string(b) == "first\n"
	})
	l.Write([]byte("second\n"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if got := strings.Count(string(b), "\n"); got != 2 {
		t.Errorf("after Close the file has %q, want two lines", b)
	}
}

// TestLogWriterConcurrentLines writes many lines from several goroutines,
// enough to fill the buffer many times (so that flushes overlap with
// appends and with each other), and checks that every line arrives whole
// and that each goroutine's lines keep their order.
func TestLogWriterConcurrentLines(t *testing.T) {
	var out testenv.SyncBuffer
	l := newLogWriter(&out, nil, time.Millisecond)
	const writers, lines = 4, 5000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				l.Write(fmt.Appendf(nil, "w%d line %06d %s\n", w, i, strings.Repeat("x", i%50)))
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	n := 0
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var w, i int
		var x string
		if _, err := fmt.Sscanf(line, "w%d line %d %s", &w, &i, &x); err != nil && i%50 != 0 {
			t.Fatalf("torn line %q: %v", line, err)
		}
		if w < 0 || w >= writers || i != next[w] || len(x) != i%50 {
			t.Fatalf("line %q out of order or torn: want line %d of writer %d", line, next[w], w)
		}
		next[w]++
		n++
	}
	if n != writers*lines {
		t.Errorf("%d lines arrived, want %d", n, writers*lines)
	}
}

// TestLogWriterReportsWriteError checks that a failed write is reported
// by Flush and Close of a file, and not by Close of stderr (c == nil).
func TestLogWriterReportsWriteError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // writes now fail
	l := newLogWriter(f, io.NopCloser(nil), time.Hour)
	l.Write([]byte("lost\n"))
	if err := l.Flush(); err == nil || !strings.Contains(err.Error(), "write access log") {
		t.Errorf("Flush after a failed write = %v, want a write access log error", err)
	}
	if err := l.Close(); err == nil {
		t.Error("Close after a failed write = nil, want the error")
	}
	s := newLogWriter(f, nil, time.Hour)
	s.Write([]byte("lost\n"))
	if err := s.Close(); err != nil {
		t.Errorf("Close of a stderr writer = %v, want nil", err)
	}
}
