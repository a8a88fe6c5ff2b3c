package icapd

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// logBufferSize is how many bytes of access log lines a logWriter holds
// before it writes them out without waiting for the ticker.
const logBufferSize = 64 << 10

// logWriter is the access log's output: lines are appended under a lock
// into a buffer that is written out (one write(2) for many lines) when it
// holds logBufferSize bytes, every flush interval by a ticker, and on
// Close. A line therefore waits at most DefaultLogFlushInterval. The
// write itself happens outside the append lock (the full buffer is
// swapped for a spare), so a slow disk does not stall every connection
// that finishes a transaction meanwhile; a second lock keeps the writes
// in order.
type logWriter struct {
	mu  sync.Mutex // guards buf; taken before wmu, never while wmu is held
	buf []byte     // lines not yet written

	wmu   sync.Mutex // held while writing, so that buffers go out in order
	spare []byte     // the other buffer, empty, while buf fills; guarded by wmu
	err   error      // the first write error; guarded by wmu
	w     io.Writer
	c     io.Closer // closed by Close; nil for stderr

	stop chan struct{}
	done chan struct{}
	once sync.Once
	cerr error // Close's result
}

// openLogFile opens (appends to, creates) the access log file at path.
func openLogFile(path string, interval time.Duration) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return newLogWriter(f, f, interval), nil
}

// newLogWriter buffers lines for w, flushing every interval; Close closes
// c if not nil.
func newLogWriter(w io.Writer, c io.Closer, interval time.Duration) *logWriter {
	l := &logWriter{
		w: w, c: c,
		buf:   make([]byte, 0, logBufferSize+1024),
		spare: make([]byte, 0, logBufferSize+1024),
		stop:  make(chan struct{}), done: make(chan struct{}),
	}
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
	return l
}

// Write buffers p (a whole line or lines). A write error is reported by
// Flush and Close, not here: the line is already accepted.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	l.unlockAppended()
	return len(p), nil
}

// unlockAppended unlocks l.mu after lines were appended to l.buf, first
// writing the buffer out if it is full.
func (l *logWriter) unlockAppended() {
	if len(l.buf) < logBufferSize {
		l.mu.Unlock()
		return
	}
	l.flushLocked()
}

// Flush writes the buffered lines out.
func (l *logWriter) Flush() error {
	l.mu.Lock()
	if len(l.buf) == 0 {
		l.wmu.Lock()
		err := l.err
		l.wmu.Unlock()
		l.mu.Unlock()
		return err
	}
	return l.flushLocked()
}

// flushLocked is called with l.mu held and releases it: it swaps the
// buffers and writes the full one holding l.wmu only. Taking wmu before
// releasing mu keeps the buffers in line order; the spare buffer is
// always back by the time the next flush gets wmu.
func (l *logWriter) flushLocked() error {
	l.wmu.Lock()
	full := l.buf
	l.buf, l.spare = l.spare, nil
	l.mu.Unlock()

	_, err := l.w.Write(full)
	l.spare = full[:0]
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("write access log: %w", err)
	}
	err = l.err
	l.wmu.Unlock()
	return err
}

// Close stops the ticker, flushes and closes the file; later calls return
// the same error.
func (l *logWriter) Close() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.cerr = l.Flush()
		if l.c == nil {
			// stderr: a write error has nowhere to be reported, and
			// the daemon exits 0 as it did when it wrote stderr
			// unbuffered.
			l.cerr = nil
			return
		}
		if err := l.c.Close(); l.cerr == nil {
			l.cerr = err
		}
	})
	return l.cerr
}
