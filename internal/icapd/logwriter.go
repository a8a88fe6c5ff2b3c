package icapd

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"time"
)

// logFile is an append-only file written through a buffer that a ticker
// flushes, so that a busy server does not make one write(2) per access log
// line. A line waits at most DefaultLogFlushInterval; Close flushes.
type logFile struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
	err  error
}

func openLogFile(path string, interval time.Duration) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	l := &logFile{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Flush()
			case <-l.stop:
				return
			}
		}
	}()
	return l, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Flush writes the buffered lines to the file.
func (l *logFile) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close flushes and closes the file; later calls return the same error.
func (l *logFile) Close() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.err = l.Flush()
		if cerr := l.f.Close(); l.err == nil {
			l.err = cerr
		}
	})
	return l.err
}
