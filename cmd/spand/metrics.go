package main

import (
	"io"
	"sync"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// captureCounters are the live capture's counters, published by the
// capture goroutine (at most once a second) for /metrics.
type captureCounters struct {
	mu      sync.Mutex
	at      time.Time
	run     capture.RunStats
	tracker track.Stats
	kernel  capture.LiveStats
	live    bool
}

var liveCounters captureCounters

func (c *captureCounters) publish(run capture.RunStats, t *track.Tracker, src liveSource, force bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.at) < time.Second && !force {
		return
	}
	c.at, c.run, c.tracker, c.live = now, run, t.Stats(), true
	if ks, err := src.Stats(); err == nil {
		c.kernel = ks
	}
}

// writeCaptureMetrics writes the live capture's counters in the
// Prometheus text format (nothing before a capture started). The server
// mode adds it to /metrics.
func writeCaptureMetrics(w io.Writer) {
	c := &liveCounters
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return
	}
	m := func(name, typ, help string, v any) { promtext.Value(w, name, typ, help, v) }
	m("spand_capture_packets_read_total", "counter", "Packets read from the capture source.", c.run.Read)
	m("spand_capture_packets_tcp_total", "counter", "TCP segments tracked.", c.tracker.TCP)
	m("spand_capture_packets_udp_total", "counter", "UDP datagrams tracked.", c.tracker.UDP)
	m("spand_capture_packets_skipped_total", "counter", "Packets neither TCP nor UDP (ARP, ICMP, MPLS, fragments).", c.tracker.Skipped)
	m("spand_capture_packets_malformed_total", "counter", "Packets whose headers did not decode.", c.tracker.Malformed)
	m("spand_capture_kernel_packets_total", "counter", "Packets the kernel passed the capture filter (drops included).", c.kernel.Packets)
	m("spand_capture_kernel_drops_total", "counter", "Packets the kernel dropped because the capture ring was full.", c.kernel.Drops)
	m("spand_track_connections_total", "counter", "Connection records created.", c.tracker.Conns)
	m("spand_track_connections_active", "gauge", "Entries in the connection table.", c.tracker.Active)
	m("spand_track_evicted_total", "counter", "Connections evicted from the full table (LRU).", c.tracker.Evicted)
	m("spand_track_idle_expired_total", "counter", "Connections ended by an idle or SYN-only timeout.", c.tracker.IdleExpired)
	m("spand_track_closed_total", "counter", "Connections ended by FIN/RST.", c.tracker.Closed)
}
