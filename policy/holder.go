package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often Holder.Watch looks at the file when
// no interval is given.
const DefaultPollInterval = 2 * time.Second

// Holder holds the current policy of a file and replaces it atomically on
// reload. Readers call Policy() per message and never block; a reload
// that fails (unreadable file, invalid policy) is logged and keeps the
// old policy. Every successful reload gets a new Version (generation and
// content hash), which icapd uses as its ISTag.
type Holder struct {
	path   string
	logger *slog.Logger
	cur    atomic.Pointer[Policy]

	mu   sync.Mutex // serialises reloads
	gen  uint64
	stat fileStamp

	// OnReload, if set before Watch, is called after every reload attempt
	// with the policy in force and the reload's error (nil on success).
	OnReload func(p *Policy, err error)
}

// fileStamp is what Watch compares to notice a change: size and mtime
// first (cheap), then the content hash, so a touch without change does
// not reload and a same-size edit within one mtime tick still does.
type fileStamp struct {
	size  int64
	mtime time.Time
	hash  [32]byte
}

// NewHolder loads path; it fails if the first load fails, since there is
// no old policy to keep. logger may be nil (slog.Default()).
func NewHolder(path string, logger *slog.Logger) (*Holder, error) {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Holder{path: path, logger: logger}
	p, st, err := h.load()
	if err != nil {
		return nil, err
	}
	h.install(p, st)
	return h, nil
}

// Policy returns the policy in force.
func (h *Holder) Policy() *Policy { return h.cur.Load() }

// Version returns the version (ISTag value) of the policy in force.
func (h *Holder) Version() string { return h.cur.Load().Version }

// Path returns the policy file's path.
func (h *Holder) Path() string { return h.path }

// read reads the file and stamps it.
func (h *Holder) read() ([]byte, fileStamp, error) {
	fi, err := os.Stat(h.path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("policy: %w", err)
	}
	if fi.Size() > DefaultMaxFileBytes {
		return nil, fileStamp{}, &Error{File: h.path, Msg: fmt.Sprintf("file is %d bytes, over the %d-byte limit", fi.Size(), DefaultMaxFileBytes)}
	}
	b, err := os.ReadFile(h.path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("policy: %w", err)
	}
	return b, fileStamp{size: fi.Size(), mtime: fi.ModTime(), hash: sha256.Sum256(b)}, nil
}

func (h *Holder) load() (*Policy, fileStamp, error) {
	b, st, err := h.read()
	if err != nil {
		return nil, st, err
	}
	p, err := Parse(h.path, b)
	return p, st, err
}

// install makes p current; h.mu must be held (or h not yet shared).
// The old policy is not closed: in-flight Decide calls may still use it,
// and the garbage collector frees it after them.
func (h *Holder) install(p *Policy, st fileStamp) {
	p.Version = version(h.gen, p.Hash)
	h.gen++
	h.stat = st
	for _, w := range p.Warnings {
		h.logger.Warn("policy warning", "warning", w)
	}
	h.cur.Store(p)
}

// Reload reads and validates the file now (SIGHUP). On success the new
// policy replaces the old one; on error the old one stays and the error
// is logged and returned.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloadLocked(false)
}

func (h *Holder) reloadLocked(onlyIfChanged bool) error {
	b, st, err := h.read()
	if err == nil && onlyIfChanged && st.hash == h.stat.hash {
		h.stat = st // touched, not changed: remember the new mtime
		return nil
	}
	var p *Policy
	if err == nil {
		h.stat = st // an unchanged bad file is not retried every poll
		p, err = Parse(h.path, b)
	}
	if err != nil {
		h.logger.Error("policy reload failed; keeping the old policy", "file", h.path, "version", h.Version(), "err", err)
		h.notify(err)
		return err
	}
	h.install(p, st)
	h.logger.Info("policy loaded", "file", h.path, "version", p.Version, "rules", len(p.rules))
	h.notify(nil)
	return nil
}

func (h *Holder) notify(err error) {
	if h.OnReload != nil {
		h.OnReload(h.cur.Load(), err)
	}
}

// statStamp returns the file's size and mtime (no hash).
func (h *Holder) statStamp() (fileStamp, bool) {
	fi, err := os.Stat(h.path)
	if err != nil {
		return fileStamp{}, false // a file being replaced; look again next time
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime()}, true
}

// changed reports whether the file's size or mtime differ from the last
// load.
func (h *Holder) changed() bool {
	st, ok := h.statStamp()
	return ok && (st.size != h.stat.size || !st.mtime.Equal(h.stat.mtime))
}

// Watch polls the file every interval (0: DefaultPollInterval) until ctx
// is done and reloads it when it changed: a different size or mtime, then
// a different content hash. It needs no inotify and works on every file
// system, including bind mounts and ConfigMaps.
//
// A change is loaded once the file's size and mtime have stayed the same
// for one more interval, so an editor that truncates and rewrites the file
// in place is not caught half way (an empty file is a valid policy that
// passes everything). Replacing the file by rename is atomic and safest.
func (h *Holder) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var pending fileStamp
	havePending := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st, ok := h.statStamp()
			h.mu.Lock()
			switch {
			case !ok || st.size == h.stat.size && st.mtime.Equal(h.stat.mtime):
				havePending = false
			case havePending && st == pending:
				havePending = false
				_ = h.reloadLocked(true)
			default:
				pending, havePending = st, true // wait one interval
			}
			h.mu.Unlock()
		}
	}
}
