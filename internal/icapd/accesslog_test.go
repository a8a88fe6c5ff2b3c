package icapd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// slogLine is the line slog.TextHandler prints for ti at now, with the
// attributes the access log had when it was written with slog.
func slogLine(t testing.TB, now time.Time, ti *icap.TransactionInfo) string {
	var want bytes.Buffer
	h := slog.NewTextHandler(&want, nil)
	r := slog.NewRecord(now, slog.LevelInfo, "icap", 0)
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
	return want.String()
}

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
		{"negative duration", icap.TransactionInfo{Method: "REQMOD", Service: "/reqmod", Status: 204, Duration: -1500 * time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c stampCache
			got := c.appendLine(nil, now, &tt.ti)
			if want := slogLine(t, now, &tt.ti); string(got) != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// TestAccessLineTimestampCache checks the cached timestamp prefix through
// a sequence of times with one cache: within a second, across seconds,
// minutes, days and years, across zones (and a DST change of the local
// zone of a named location) and with monotonic clock readings.
func TestAccessLineTimestampCache(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Logf("no tz database (%v); using fixed zones only", err)
		ny = time.FixedZone("EST", -5*3600)
	}
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	times := []time.Time{
		base, base.Add(time.Millisecond), base.Add(999 * time.Millisecond), base.Add(999_999_999),
		base.Add(time.Second), base.Add(1500 * time.Millisecond), base.Add(2 * time.Second), base.Add(2*time.Second + 1),
		base.In(time.FixedZone("X", 3600)).Add(2 * time.Second), // same second, other zone
		base.Add(2 * time.Second),
		time.Date(2026, 3, 8, 1, 59, 59, 998_000_000, ny), // DST starts at 02:00 in New York
		time.Date(2026, 3, 8, 1, 59, 59, 999_000_000, ny),
		time.Date(2026, 3, 8, 3, 0, 0, 1_000_000, ny),
		time.Date(1969, 12, 31, 23, 59, 59, 5_000_000, time.UTC),
		time.Now(), time.Now().Add(time.Second),
	}
	ti := &icap.TransactionInfo{Method: "OPTIONS", Service: "/echo", Status: 200, RemoteAddr: "127.0.0.1:1"}
	var c stampCache
	for i, now := range times {
		got := c.appendLine(nil, now, ti)
		if want := slogLine(t, now, ti); string(got) != want {
			t.Errorf("time %d (%v): got  %q\nwant %q", i, now, got, want)
		}
	}
}

// durationSamples are durations whose String takes every branch.
func durationSamples() []time.Duration {
	ds := []time.Duration{0, 1, -1, 9, 10, 999, 1000, 1001, 1010, 1100, 52100, 999_999, 1_000_000, 1_000_001,
		1_500_000, 12_345_678, 999_999_999, time.Second, time.Second + 1, 1500 * time.Millisecond, 59 * time.Second,
		time.Minute, time.Minute + time.Nanosecond, time.Hour, time.Hour + time.Second, 100 * time.Hour,
		math.MaxInt64, math.MinInt64, math.MinInt64 + 1, -time.Hour, -52100}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ds = append(ds, time.Duration(r.Int64N(int64(1)<<uint(r.IntN(63)))), -time.Duration(r.Int64N(1<<40)))
	}
	return ds
}

func TestAppendDuration(t *testing.T) {
	for _, d := range durationSamples() {
		if got, want := string(appendDuration([]byte("x"), d)), "x"+d.String(); got != want {
			t.Errorf("appendDuration(%d) = %q, want %q", int64(d), got, want)
		}
	}
}

func FuzzAppendDuration(f *testing.F) {
	for _, d := range durationSamples()[:40] {
		f.Add(int64(d))
	}
	f.Fuzz(func(t *testing.T, n int64) {
		d := time.Duration(n)
		if got := string(appendDuration(nil, d)); got != d.String() {
			t.Errorf("appendDuration(%d) = %q, want %q", n, got, d.String())
		}
	})
}

func BenchmarkAccessLine(b *testing.B) {
	ti := &icap.TransactionInfo{Method: "OPTIONS", Service: "/echo", Status: 200, BytesIn: 68, BytesOut: 301,
		Duration: 52100 * time.Nanosecond, RemoteAddr: "127.0.0.1:48392"}
	b.Run("hand", func(b *testing.B) {
		w := newLogWriter(discard{}, nil, time.Hour)
		defer w.Close()
		l := newAccessLog(w)
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
