package icapd

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// BenchmarkObserve measures the daemon's per-transaction bookkeeping
// (Daemon.observe: metrics and the access log line) for the access log
// off, to a discarding writer (the cost of formatting and buffering) and
// to a file (plus the write(2) of every full buffer), and from parallel
// goroutines to a file.
func BenchmarkObserve(b *testing.B) {
	txs := []icap.TransactionInfo{
		{Method: "OPTIONS", Service: "/echo", Status: 200, BytesIn: 68, BytesOut: 301,
			Duration: 52100 * time.Nanosecond, RemoteAddr: "127.0.0.1:48392"},
		{Method: "RESPMOD", Service: "/echo", Status: 200, BytesIn: 10412, BytesOut: 10390,
			Duration: 181 * time.Microsecond, ClientIP: "192.0.2.7", RemoteAddr: "127.0.0.1:48392"},
	}
	for _, mode := range []string{"off", "discard", "file"} {
		b.Run("log="+mode, func(b *testing.B) {
			access := "off"
			if mode == "file" {
				access = filepath.Join(b.TempDir(), "access.log")
			}
			d, err := New(Config{AccessLog: access}, nil, DefaultServices()...)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if d.closer != nil {
					d.closer.Close()
				}
			}()
			if mode == "discard" {
				w := newLogWriter(discard{}, nil, time.Hour)
				defer w.Close()
				d.access = newAccessLog(w)
			}
			for i := range txs {
				txs[i].Start = time.Now()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d.observe(&txs[i&1])
				i++
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		d, err := New(Config{AccessLog: filepath.Join(b.TempDir(), "access.log")}, nil, DefaultServices()...)
		if err != nil {
			b.Fatal(err)
		}
		defer d.closer.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ti := txs[1]
			ti.Start = time.Now()
			for pb.Next() {
				d.observe(&ti)
			}
		})
	})
}
