package policy

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	holderV1  = "[[rules]]\nname = \"one\"\nmatch.host = [\"a.example\"]\naction = \"block\"\n"
	holderV2  = "[[rules]]\nname = \"two\"\nmatch.host = [\"b.example\"]\naction = \"block\"\n"
	holderBad = "[[rules]]\nname = \"bad\"\nmatch.hots = [\"b.example\"]\naction = \"block\"\n"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceFile replaces path atomically (write, then rename), as an
// operator's deployment tool should, so a poll never sees a partial file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type reload struct {
	p   *Policy
	err error
}

func TestHolderReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	writeFile(t, path, holderV1)
	var logs bytes.Buffer
	h, err := NewHolder(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v1 := h.Version()
	if len(v1) > 32 || !strings.HasPrefix(v1, "0-") {
		t.Fatalf("version %q", v1)
	}

	// A reload of the same file is still a new generation: the ISTag
	// changes on every successful reload.
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if h.Version() == v1 || !strings.HasPrefix(h.Version(), "1-") {
		t.Errorf("version after reload %q (was %q)", h.Version(), v1)
	}

	// A bad file is rejected, logged, and the old policy stays.
	writeFile(t, path, holderBad)
	before := h.Policy()
	err = h.Reload()
	if err == nil || !strings.Contains(err.Error(), "match.hots: unknown key") {
		t.Fatalf("Reload of bad file: %v", err)
	}
	if h.Policy() != before {
		t.Error("policy replaced by a bad file")
	}
	if !strings.Contains(logs.String(), "policy reload failed; keeping the old policy") || !strings.Contains(logs.String(), "match.hots") {
		t.Errorf("log: %s", logs.String())
	}

	writeFile(t, path, holderV2)
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := h.Policy().Rules(); len(got) != 1 || got[0] != "two" {
		t.Errorf("rules %q", got)
	}

	if _, err := NewHolder(filepath.Join(t.TempDir(), "missing.toml"), nil); err == nil {
		t.Error("NewHolder of a missing file succeeded")
	}
}

func TestHolderWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	writeFile(t, path, holderV1)
	h, err := NewHolder(path, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan reload, 10)
	h.OnReload = func(p *Policy, err error) { reloads <- reload{p, err} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Watch(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func() reload {
		t.Helper()
		select {
		case r := <-reloads:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no reload within 10s")
		}
		return reload{}
	}
	v1 := h.Version()

	replaceFile(t, path, holderV2+"# changed\n")
	r := wait()
	if r.err != nil || r.p.Rules()[0] != "two" || r.p != h.Policy() || h.Version() == v1 {
		t.Fatalf("after change: err %v rules %q version %q", r.err, r.p.Rules(), h.Version())
	}
	v2 := h.Version()

	replaceFile(t, path, holderBad)
	r = wait()
	if r.err == nil || h.Version() != v2 || h.Policy().Rules()[0] != "two" {
		t.Fatalf("bad file: err %v version %q", r.err, h.Version())
	}

	replaceFile(t, path, holderV1)
	r = wait()
	if r.err != nil || h.Policy().Rules()[0] != "one" || h.Version() == v2 {
		t.Fatalf("fixed file: err %v version %q", r.err, h.Version())
	}
}

// A touch (new mtime, same bytes) must not reload.
func TestHolderTouchDoesNotReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	writeFile(t, path, holderV1)
	h, err := NewHolder(path, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v := h.Version()
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if !h.changed() {
		t.Fatal("mtime change not noticed")
	}
	h.mu.Lock()
	err = h.reloadLocked(true)
	h.mu.Unlock()
	if err != nil || h.Version() != v {
		t.Errorf("touch reloaded: %v, version %q → %q", err, v, h.Version())
	}
	if h.changed() {
		t.Error("new mtime not remembered")
	}
}
