package congestion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Defaults for the zero fields of [Config].
const (
	DefaultMSS                  = 1448 // payload of a 1500-byte Ethernet frame with TCP timestamps
	DefaultInitialSegments      = 10   // RFC 6928 initial window, in MSS
	DefaultMinSegments          = 2    // floor of loss halving and aging, in MSS (RFC 5681: 2*SMSS)
	DefaultMaxWindow            = 64 << 20
	DefaultMaxGrant             = 64 << 10
	DefaultIPv4PrefixLen        = 32
	DefaultIPv6PrefixLen        = 128
	DefaultMaxMacroflows        = 1024
	DefaultMaxFlowsPerMacroflow = 256
	DefaultRememberTTL          = 10 * time.Minute
	DefaultGrantTimeout         = 200 * time.Millisecond
	DefaultStaleTimeout         = 3 * time.Second
	DefaultIdleAgingPeriod      = 200 * time.Millisecond
	DefaultThreshold            = 0.25
)

// Errors returned by the manager and its flows.
var (
	ErrClosed               = errors.New("congestion: flow closed")
	ErrTooManyMacroflows    = errors.New("congestion: too many macroflows")
	ErrTooManyFlows         = errors.New("congestion: too many flows in macroflow")
	ErrRequestPending       = errors.New("congestion: flow already has a request pending")
	ErrGrantOutstanding     = errors.New("congestion: previous grant not yet notified")
	ErrInvalidRequest       = errors.New("congestion: request size must be > 0")
	ErrInvalidMacroflowName = errors.New("congestion: empty macroflow name")
	ErrNoDestination        = errors.New("congestion: flow has neither a destination address nor a macroflow name")
)

// LossMode says what kind of congestion signal an [Flow.Update] carries
// (RFC 3124 section 4.2, cm_update's lossmode).
type LossMode int

const (
	// NoCongestion: the bytes were received with no sign of congestion.
	NoCongestion LossMode = iota
	// LossFeedback: some bytes were lost (duplicate ACKs, SACK): halve.
	LossFeedback
	// ExplicitCongestion: the receiver echoed an ECN mark: halve.
	ExplicitCongestion
	// NoFeedback: a timeout, no feedback arrived: back to one MSS.
	NoFeedback
)

// String returns the mode's Go name.
func (m LossMode) String() string {
	switch m {
	case NoCongestion:
		return "NoCongestion"
	case LossFeedback:
		return "LossFeedback"
	case ExplicitCongestion:
		return "ExplicitCongestion"
	case NoFeedback:
		return "NoFeedback"
	}
	return fmt.Sprintf("LossMode(%d)", int(m))
}

// Clock is the manager's time source. *time.Timer satisfies Timer; tests
// substitute a fake clock that advances only when told to.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (or, for a fake clock, from
	// the goroutine that advances time) after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer the manager uses.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}

// SystemClock is the wall clock, the default [Config.Clock].
var SystemClock Clock = systemClock{}

// Config configures a [Manager]. The zero value is a valid configuration:
// every zero field means its Default... constant.
type Config struct {
	// MSS is the largest segment a flow sends, in bytes; windows are
	// counted in bytes and grow by MSS units.
	MSS int
	// InitialWindow is the window of a new macroflow, in bytes
	// (default DefaultInitialSegments*MSS).
	InitialWindow int
	// MinWindow is the floor of loss halving and of aging, in bytes
	// (default DefaultMinSegments*MSS). NoFeedback still drops the window
	// to one MSS.
	MinWindow int
	// MaxWindow caps the window, in bytes.
	MaxWindow int
	// MaxGrant caps one grant, in bytes, so one flow cannot take the whole
	// window in one turn.
	MaxGrant int

	// IPv4PrefixLen and IPv6PrefixLen group flows into macroflows by
	// destination prefix (default: one macroflow per destination address).
	IPv4PrefixLen int
	IPv6PrefixLen int
	// MaxMacroflows bounds the macroflows kept, active or remembered.
	MaxMacroflows int
	// MaxFlowsPerMacroflow bounds the open flows of one macroflow.
	MaxFlowsPerMacroflow int
	// RememberTTL is how long the state of a macroflow whose flows all
	// closed is kept for a later flow to the same host (RFC 9040 temporal
	// sharing).
	RememberTTL time.Duration

	// GrantTimeout is the floor of a grant's lifetime: a grant not
	// notified within max(srtt, GrantTimeout) expires.
	GrantTimeout time.Duration
	// StaleTimeout: bytes a flow reported sent but got no feedback about
	// for max(StaleTimeout, 4*srtt) are released from the macroflow (the
	// flow crashed or stopped updating).
	StaleTimeout time.Duration
	// IdleAgingPeriod floors the RTO-like period, max(srtt+4*rttvar,
	// IdleAgingPeriod), by which the window of an idle macroflow (nothing
	// outstanding or granted: the application had nothing to send) halves,
	// never below min(InitialWindow, window) (restart after idle, RFC 2861,
	// RFC 5681 section 4.1; Linux's TCP_RTO_MIN is 200 ms). While bytes are
	// outstanding and no feedback comes, the window still halves every srtt
	// (RFC 3124 section 5.2).
	IdleAgingPeriod time.Duration

	// NewController makes the controller of each macroflow
	// (default NewAIMD).
	NewController func(ControllerConfig) Controller
	// NewScheduler makes the scheduler of each macroflow (default NewWRR).
	NewScheduler func(mss int) Scheduler

	// Logger receives debug lines about expired grants and capped
	// updates; nil discards them.
	Logger *slog.Logger

	// Clock is the time source (default SystemClock).
	Clock Clock
}

func (c Config) withDefaults() Config {
	if c.MSS <= 0 {
		c.MSS = DefaultMSS
	}
	if c.InitialWindow <= 0 {
		c.InitialWindow = DefaultInitialSegments * c.MSS
	}
	if c.MinWindow <= 0 {
		c.MinWindow = DefaultMinSegments * c.MSS
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	c.MinWindow = max(c.MinWindow, c.MSS)
	c.InitialWindow = max(c.InitialWindow, c.MinWindow)
	c.MaxWindow = max(c.MaxWindow, c.InitialWindow)
	if c.MaxGrant <= 0 {
		c.MaxGrant = DefaultMaxGrant
	}
	c.MaxGrant = max(c.MaxGrant, c.MSS)
	if c.IPv4PrefixLen <= 0 || c.IPv4PrefixLen > 32 {
		c.IPv4PrefixLen = DefaultIPv4PrefixLen
	}
	if c.IPv6PrefixLen <= 0 || c.IPv6PrefixLen > 128 {
		c.IPv6PrefixLen = DefaultIPv6PrefixLen
	}
	if c.MaxMacroflows <= 0 {
		c.MaxMacroflows = DefaultMaxMacroflows
	}
	if c.MaxFlowsPerMacroflow <= 0 {
		c.MaxFlowsPerMacroflow = DefaultMaxFlowsPerMacroflow
	}
	if c.RememberTTL <= 0 {
		c.RememberTTL = DefaultRememberTTL
	}
	if c.GrantTimeout <= 0 {
		c.GrantTimeout = DefaultGrantTimeout
	}
	if c.StaleTimeout <= 0 {
		c.StaleTimeout = DefaultStaleTimeout
	}
	if c.IdleAgingPeriod <= 0 {
		c.IdleAgingPeriod = DefaultIdleAgingPeriod
	}
	if c.NewController == nil {
		c.NewController = func(cc ControllerConfig) Controller { return NewAIMD(cc) }
	}
	if c.NewScheduler == nil {
		c.NewScheduler = func(mss int) Scheduler { return NewWRR(mss) }
	}
	if c.Clock == nil {
		c.Clock = SystemClock
	}
	return c
}

// Manager is a congestion manager: it groups flows into macroflows and
// shares each macroflow's congestion window among its flows. It is safe
// for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	macroflows map[string]*Macroflow
	nextID     uint64

	poller poller // TCP_INFO of the manager's Conns
}

// NewManager returns a manager configured by cfg (zero fields take their
// defaults).
func NewManager(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log, macroflows: make(map[string]*Macroflow)}
}

// Config returns the manager's configuration with defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// MSS returns the segment size grants are counted in (cm_mtu).
func (m *Manager) MSS() int { return m.cfg.MSS }

// FlowInfo describes a flow to [Manager.Open] (RFC 3124 cm_open).
type FlowInfo struct {
	Src, Dst netip.AddrPort
	// Protocol is informational ("tcp", "udp", ...).
	Protocol string
	// Weight is the flow's share relative to the other flows of its
	// macroflow (default 1).
	Weight int
	// Priority is a hint for the hierarchical scheduler: flows of the same
	// priority share a class; classes share the window in proportion to
	// 2^Priority (0..7; default 0).
	Priority int
	// Macroflow, when not empty, names the macroflow explicitly instead of
	// grouping by destination prefix.
	Macroflow string
}

// MacroflowKey returns the name of the macroflow info belongs to: the
// explicit info.Macroflow, or the destination address masked with the
// configured prefix length ("192.0.2.0/24").
func (m *Manager) MacroflowKey(info FlowInfo) string {
	if info.Macroflow != "" {
		return info.Macroflow
	}
	a := info.Dst.Addr().Unmap()
	bits := m.cfg.IPv6PrefixLen
	if a.Is4() {
		bits = m.cfg.IPv4PrefixLen
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// Open opens a flow (cm_open) in the macroflow named by
// [Manager.MacroflowKey]. It fails with ErrNoDestination when info names
// neither a destination address nor a macroflow, and with
// ErrTooManyMacroflows or ErrTooManyFlows at the configured limits.
func (m *Manager) Open(info FlowInfo) (*Flow, error) {
	if info.Weight <= 0 {
		info.Weight = 1
	}
	info.Priority = min(max(info.Priority, 0), 7)
	f := &Flow{m: m, info: info, grantCh: make(chan Grant, 1), closedCh: make(chan struct{})}
	f.acquireFn = f.deliver
	if !info.Dst.Addr().IsValid() && info.Macroflow == "" {
		return nil, ErrNoDestination
	}
	key := m.MacroflowKey(info)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	f.id = m.nextID
	mf, err := m.macroflowLocked(key)
	if err != nil {
		return nil, err
	}
	if err := mf.add(f); err != nil {
		return nil, err
	}
	return f, nil
}

// macroflowLocked returns the macroflow named key, creating it (and
// making room under MaxMacroflows) when needed. m.mu is held.
func (m *Manager) macroflowLocked(key string) (*Macroflow, error) {
	now := m.cfg.Clock.Now()
	if mf, ok := m.macroflows[key]; ok {
		return mf, nil
	}
	if len(m.macroflows) >= m.cfg.MaxMacroflows {
		m.evictLocked(now)
		if len(m.macroflows) >= m.cfg.MaxMacroflows {
			return nil, fmt.Errorf("open flow to %s: %w (limit %d)", key, ErrTooManyMacroflows, m.cfg.MaxMacroflows)
		}
	}
	mf := newMacroflow(m, key, now)
	m.macroflows[key] = mf
	return mf, nil
}

// evictLocked drops remembered macroflows past RememberTTL and, if still
// at the limit, the least recently used remembered one.
func (m *Manager) evictLocked(now time.Time) {
	var lru *Macroflow
	var lruAt time.Time
	for key, mf := range m.macroflows {
		idle, at := mf.idleSince()
		if !idle {
			continue
		}
		if now.Sub(at) > m.cfg.RememberTTL {
			delete(m.macroflows, key)
			continue
		}
		if lru == nil || at.Before(lruAt) {
			lru, lruAt = mf, at
		}
	}
	if len(m.macroflows) >= m.cfg.MaxMacroflows && lru != nil {
		delete(m.macroflows, lru.key)
	}
}

// Macroflow returns the macroflow named key, or nil.
func (m *Manager) Macroflow(key string) *Macroflow {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.macroflows[key]
}

// Macroflows returns how many macroflows are kept, active or remembered.
func (m *Manager) Macroflows() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.macroflows)
}

// debug reports whether debug lines are wanted, so that hot paths build
// their arguments only then.
func (m *Manager) debug() bool { return m.log.Enabled(context.Background(), slog.LevelDebug) }

// Close closes every open flow (blocked Acquires return ErrClosed, and
// no grant is made meanwhile) and forgets all macroflows. Flows opened
// afterwards start afresh.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mf := range m.macroflows {
		mf.mu.Lock()
		for f := range mf.flows {
			mf.closeLocked(f)
		}
		if mf.timer != nil {
			mf.timer.Stop()
			mf.timerAt = time.Time{}
		}
		mf.mu.Unlock()
	}
	clear(m.macroflows)
	return nil
}
