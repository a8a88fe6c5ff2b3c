package spand

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/promtext"
)

// Store keeps what was learned and answers predictions. MemoryStore is the
// default; package redisstore shares one view among many spand and icapd
// nodes.
type Store interface {
	// Add aggregates validated reports. An error means they were not
	// accepted (a store that queues them returns nil).
	Add(ctx context.Context, reports []Report) error
	// Predict answers for addr and class.
	Predict(ctx context.Context, addr netip.Addr, class Class) (Prediction, error)
	// Entries lists what is known, at most limit entries (0 = all).
	Entries(ctx context.Context, limit int) ([]Prediction, error)
	// Metrics writes the store's counters in the Prometheus text format.
	Metrics(w io.Writer)
	// Close flushes what must survive a restart.
	Close() error
}

// MemoryStore is an Aggregator that can be saved to and restored from a
// snapshot file, so that a restart keeps what was learned.
type MemoryStore struct {
	*Aggregator

	// Path is the snapshot file; empty means no persistence.
	Path string

	saveMu sync.Mutex
	saves  uint64
	errs   uint64
}

// NewMemoryStore returns a store with cfg, restored from the snapshot at
// path when the file exists. An empty path keeps everything in memory only.
func NewMemoryStore(cfg Config, path string) (*MemoryStore, error) {
	m := &MemoryStore{Aggregator: NewAggregator(cfg), Path: path}
	if path == "" {
		return m, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spand: open snapshot: %w", err)
	}
	defer f.Close()
	if err := m.ReadSnapshot(f); err != nil {
		return nil, fmt.Errorf("spand: load snapshot %s: %w", path, err)
	}
	return m, nil
}

// Add implements Store.
func (m *MemoryStore) Add(_ context.Context, reports []Report) error {
	m.Aggregator.Add(reports...)
	return nil
}

// Predict implements Store.
func (m *MemoryStore) Predict(_ context.Context, addr netip.Addr, class Class) (Prediction, error) {
	return m.Aggregator.Predict(addr, class), nil
}

// Entries implements Store.
func (m *MemoryStore) Entries(_ context.Context, limit int) ([]Prediction, error) {
	return m.Aggregator.Entries(limit), nil
}

// Metrics implements Store.
func (m *MemoryStore) Metrics(w io.Writer) {
	m.Aggregator.WriteMetrics(w)
	m.saveMu.Lock()
	saves, errs := m.saves, m.errs
	m.saveMu.Unlock()
	promtext.Value(w, "spand_snapshot_saves_total", "counter", "Snapshots written.", saves)
	promtext.Value(w, "spand_snapshot_errors_total", "counter", "Snapshots that failed.", errs)
}

// Save writes the snapshot atomically: to a temporary file in the same
// directory, synced, then renamed over Path, so a crash leaves either the
// old or the new snapshot, never half of one.
func (m *MemoryStore) Save() error {
	if m.Path == "" {
		return nil
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	err := writeFileAtomic(m.Path, m.WriteSnapshot)
	if err != nil {
		m.errs++
		return fmt.Errorf("spand: save snapshot: %w", err)
	}
	m.saves++
	return nil
}

func (m *MemoryStore) saveCount() uint64 {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	return m.saves
}

// Close saves the snapshot.
func (m *MemoryStore) Close() error { return m.Save() }

// RunSnapshots expires stale keys and saves the snapshot (when Path is
// set) every interval until ctx ends. Failed saves are logged, counted in
// the metrics, and retried at the next tick.
func (m *MemoryStore) RunSnapshots(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Aggregator.Expire()
			if err := m.Save(); err != nil && log != nil {
				log.Error("spand: snapshot", "err", err)
			}
		}
	}
}

func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// snapshotVersion is bumped when the snapshot format changes.
const snapshotVersion = 1

type snapshotFile struct {
	Version int             `json:"version"`
	Saved   time.Time       `json:"saved"`
	Keys    []snapshotEntry `json:"keys"`
}

type snapshotEntry struct {
	Key     string   `json:"key"`
	Samples []Sample `json:"samples"`
}

// WriteSnapshot writes every key and its samples as JSON.
func (a *Aggregator) WriteSnapshot(w io.Writer) error {
	snap := snapshotFile{Version: snapshotVersion, Saved: a.now().UTC()}
	a.forEach(func(k Key, s []Sample) {
		snap.Keys = append(snap.Keys, snapshotEntry{k.String(), append([]Sample(nil), s...)})
	})
	return json.NewEncoder(w).Encode(&snap)
}

// ReadSnapshot adds the keys and samples of a snapshot; samples that have
// expired since it was saved are dropped.
func (a *Aggregator) ReadSnapshot(r io.Reader) error {
	var snap snapshotFile
	if err := json.NewDecoder(r).Decode(&snap); err != nil {
		return err
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("snapshot version %d, want %d", snap.Version, snapshotVersion)
	}
	for _, e := range snap.Keys {
		k, err := ParseKey(e.Key)
		if err != nil {
			return err
		}
		a.AddSamples(k, e.Samples...)
	}
	return nil
}

var _ Store = (*MemoryStore)(nil)
