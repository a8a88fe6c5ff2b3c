package icapd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// TestAccessLineMatchesSlog checks that the hand-appended access log line
// is byte for byte what slog.TextHandler printed for the same attributes.
func TestAccessLineMatchesSlog(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 20, 3, 477_912_000, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		ti   icap.TransactionInfo
	}{
		{"options", icap.TransactionInfo{Method: "OPTIONS", Service: "/echo", Status: 200, BytesIn: 68, BytesOut: 301,
			Duration: 52100 * time.Nanosecond, RemoteAddr: "127.0.0.1:48392"}},
		{"client ip and error", icap.TransactionInfo{Method: "RESPMOD", Service: "/respmod", Status: 400, BytesIn: 10240,
			Duration: 3 * time.Millisecond, ClientIP: "192.0.2.7", RemoteAddr: "[::1]:1",
			Err: errors.New(`icap: malformed request line "x=y": bad`)}},
		{"empty and odd strings", icap.TransactionInfo{Method: "", Service: "/a b=c\\d", Status: 0,
			ClientIP: "é\u00a0\t\x7f\xff", RemoteAddr: "h\"q"}},
		{"unicode printable", icap.TransactionInfo{Method: "GÉT", Service: "/ünï", Status: 501, Duration: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			h := slog.NewTextHandler(&want, nil)
			r := slog.NewRecord(now, slog.LevelInfo, "icap", 0)
			ti := &tt.ti
			r.AddAttrs(
				slog.String("method", ti.Method),
				slog.String("service", ti.Service),
				slog.Int("status", ti.Status),
				slog.Int64("bytes_in", ti.BytesIn),
				slog.Int64("bytes_out", ti.BytesOut),
				slog.Duration("duration", ti.Duration),
				slog.String("client_ip", ti.ClientIP),
				slog.String("remote", ti.RemoteAddr),
			)
			if ti.Err != nil {
				r.AddAttrs(slog.String("err", ti.Err.Error()))
			}
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			got := appendAccessLine(nil, now, ti)
			if string(got) != want.String() {
				t.Errorf("got  %q\nwant %q", got, want.String())
			}
		})
	}
}

func BenchmarkAccessLine(b *testing.B) {
	ti := &icap.TransactionInfo{Method: "OPTIONS", Service: "/echo", Status: 200, BytesIn: 68, BytesOut: 301,
		Duration: 52100 * time.Nanosecond, RemoteAddr: "127.0.0.1:48392"}
	b.Run("hand", func(b *testing.B) {
		l := &accessLog{w: discard{}}
		b.ReportAllocs()
		for b.Loop() {
			l.log(time.Now(), ti)
		}
	})
	b.Run("slog", func(b *testing.B) {
		l := slog.New(slog.NewTextHandler(discard{}, nil))
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(context.Background(), slog.LevelInfo, "icap",
				slog.String("method", ti.Method), slog.String("service", ti.Service), slog.Int("status", ti.Status),
				slog.Int64("bytes_in", ti.BytesIn), slog.Int64("bytes_out", ti.BytesOut), slog.Duration("duration", ti.Duration),
				slog.String("client_ip", ti.ClientIP), slog.String("remote", ti.RemoteAddr))
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
