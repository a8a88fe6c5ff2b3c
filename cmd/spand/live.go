package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// liveSource is a live capture with kernel statistics.
type liveSource interface {
	capture.Source
	Stats() (capture.LiveStats, error)
}

func openLive(o *options) (liveSource, error) {
	if o.libpcap {
		return capture.OpenPcapLive(o.iface, o.snaplen, o.filter)
	}
	lt, err := capture.LinkTypeOf(o.iface)
	if err != nil {
		return nil, err
	}
	f, err := capture.CompileFilter(o.filter, lt)
	if err != nil {
		return nil, err
	}
	return capture.OpenLive(capture.LiveOptions{Interface: o.iface, Filter: f, SnapLen: o.snaplen})
}

// live runs a live capture until ctx is done, handing every record (final
// and periodic) to onConn from the capture goroutine.
func live(ctx context.Context, o *options, onConn func(*track.Conn), log *slog.Logger) error {
	src, err := openLive(o)
	if err != nil {
		return err
	}
	defer src.Close()
	if fw := o.fw; fw != nil {
		inner := onConn
		onConn = func(c *track.Conn) {
			inner(c)
			fw.conn(c)
		}
	}
	log.Info("capturing", "interface", o.iface, "filter", o.filter, "libpcap", o.libpcap, "report_to", forwardOpts.url)
	if o.statsEvery > 0 {
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(o.statsEvery)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if ks, err := src.Stats(); err == nil {
						log.Info("kernel", "packets", ks.Packets, "drops", ks.Drops)
					}
				}
			}
		}()
	}
	t := track.New(o.trackerConfig(onConn))
	rs, err := capture.RunProgress(ctx, src, nil, t, func(rs capture.RunStats) { liveCounters.publish(rs, t, src, false) })
	t.Flush()
	liveCounters.publish(rs, t, src, true)
	st := t.Stats()
	ks, kerr := src.Stats()
	log.Info("capture ended", "read", rs.Read, "tcp", st.TCP, "udp", st.UDP, "connections", st.Conns,
		"evicted", st.Evicted, "kernel_packets", ks.Packets, "kernel_drops", ks.Drops, "stats_error", kerr)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("capture on %s: %w", o.iface, err)
	}
	return nil
}

// liveOutput is `spand -i IFACE` without -serve: final records are
// written as connections end.
func liveOutput(ctx context.Context, o *options, stdout io.Writer, log *slog.Logger) error {
	w, err := track.NewWriter(stdout, o.output)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var werr error
	err = live(ctx, o, func(c *track.Conn) {
		if !c.Final || c.Proto != track.TCP && !o.udp {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			werr = w.Write(c)
		}
		if werr == nil {
			werr = w.Flush()
		}
	}, log)
	if err != nil {
		return err
	}
	return werr
}
