package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// options are the flags of the capture modes.
type options struct {
	read, iface, filter, output, serve string

	maxConns   int
	idle       time.Duration
	periodic   time.Duration
	udp        bool
	snaplen    int
	libpcap    bool
	statsEvery time.Duration
	busyGap    time.Duration
	cpuProfile string

	fw *forwarder // -report-to, nil without
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.read, "r", "", "read packets from capture `FILE` (pcap, pcapng, optionally gzip-compressed)")
	fs.StringVar(&o.iface, "i", "", "capture live on `IFACE` (needs root or CAP_NET_RAW)")
	fs.StringVar(&o.filter, "f", "", "capture `FILTER` in tcpdump syntax")
	fs.StringVar(&o.output, "o", "table", "output `FORMAT` of connection records: table, json or csv")
	fs.StringVar(&o.serve, "serve", "", "run the performance server on `ADDR` (host:port)")
	fs.IntVar(&o.maxConns, "max-conns", track.DefaultMaxConns, "connection table size (LRU eviction beyond)")
	fs.DurationVar(&o.idle, "idle", track.DefaultIdleTimeout, "idle timeout of a connection")
	fs.DurationVar(&o.periodic, "periodic", track.DefaultPeriodic, "interval of interim records for long connections (live; negative: none)")
	fs.BoolVar(&o.udp, "udp", false, "also output UDP flows (offline/live output; the server always gets them)")
	fs.IntVar(&o.snaplen, "snaplen", 0, "live capture snap length in bytes (0: 256 with AF_PACKET, headers only, which is all spand reads; 262144 with libpcap)")
	fs.BoolVar(&o.libpcap, "libpcap", false, "capture live with libpcap instead of AF_PACKET (builds with -tags libpcap)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	fs.DurationVar(&o.busyGap, "busy-gap", track.DefaultBusyGap, "longest gap between a host's data packets that still counts as busy time for its host rate (the local host's estimate)")
	fs.DurationVar(&o.statsEvery, "stats", 0, "log capture statistics (packets, kernel drops, table) at this interval (live; 0: at the end only)")
}

func (o *options) trackerConfig(onConn func(*track.Conn)) track.Config {
	return track.Config{
		OnConn:      onConn,
		MaxConns:    o.maxConns,
		IdleTimeout: o.idle,
		Periodic:    o.periodic,
		BusyGap:     o.busyGap,
	}
}

// readFile tracks every connection of a capture file, handing each final
// record to onConn (valid during the call only) in the order connections
// ended. Used by the offline mode and by eval.
func readFile(ctx context.Context, path, filter string, cfg track.Config) (track.Stats, error) {
	return readFileLog(ctx, path, filter, cfg, nil)
}

// readFileLog is readFile with a logger for warnings (nil: none).
func readFileLog(ctx context.Context, path, filter string, cfg track.Config, log *slog.Logger) (track.Stats, error) {
	src, err := capture.OpenFile(path)
	if err != nil {
		return track.Stats{}, err
	}
	defer src.Close()
	f, err := capture.CompileFilter(filter, src.LinkType())
	if err != nil {
		return track.Stats{}, err
	}
	cfg.Periodic = -1 // a file is read at once: final records only
	t := track.New(cfg)
	rs, err := capture.Run(ctx, src, f, t)
	if err != nil {
		return t.Stats(), fmt.Errorf("%s: %w", path, err)
	}
	if rs.CutShort && log != nil {
		log.Warn("capture file ends in the middle of a packet; read up to there", "file", path, "packets", rs.Read)
	}
	t.Flush()
	return t.Stats(), nil
}

// offline is `spand -r FILE`: one record per TCP connection (and UDP flow
// with -udp), in the order of their first packet.
func offline(ctx context.Context, o *options, stdout io.Writer, log *slog.Logger) error {
	w, err := track.NewWriter(stdout, o.output)
	if err != nil {
		return err
	}
	// Records arrive in the order connections ended; each goes to the
	// slot of its ID (the tracker numbers connections 1, 2, ... as they
	// start), which puts them in order without sorting big structs. The
	// slots are in fixed-size chunks, so that nothing is copied as they
	// grow. Slots of records not output (UDP without -udp) stay zero.
	const chunk = 1024
	var conns [][]track.Conn
	cfg := o.trackerConfig(func(c *track.Conn) {
		if c.Proto == track.TCP || o.udp {
			if i := int(c.ID) - 1; i >= 0 && i < 1<<40 {
				for len(conns) <= i/chunk {
					conns = append(conns, make([]track.Conn, chunk))
				}
				conns[i/chunk][i%chunk] = *c
			}
		}
		if o.fw != nil {
			o.fw.conn(c)
		}
	})
	cfg.NoUDP = !o.udp
	st, err := readFileLog(ctx, o.read, o.filter, cfg, log)
	if err != nil {
		return err
	}
	for _, cs := range conns {
		for i := range cs {
			if cs[i].ID == 0 {
				continue
			}
			if err := w.Write(&cs[i]); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	log.Debug("capture read", "file", o.read, "packets", st.Packets, "tcp", st.TCP, "udp", st.UDP,
		"skipped", st.Skipped, "malformed", st.Malformed, "truncated", st.Truncated, "connections", st.Conns)
	return nil
}
