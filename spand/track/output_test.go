package track_test

import (
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// TestWriterJSONNoAlloc: a JSON record is written without allocating
// (quoted keys made once, addresses and times appended in place), and
// stays valid JSON with the documented fields, IPv6 included.
func TestWriterJSONNoAlloc(t *testing.T) {
	c := &track.Conn{
		ID: 1, Proto: track.TCP, Class: track.ClassBulk,
		A:     netip.MustParseAddrPort("[2001:db8::1]:443"),
		B:     netip.MustParseAddrPort("10.0.0.2:5555"),
		First: time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.UTC),
		Last:  time.Date(2026, 11, 21, 12, 0, 1, 0, time.UTC),
	}
	var sb strings.Builder
	w, _ := track.NewWriter(&sb, track.FormatJSON)
	if err := w.Write(c); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	var m map[string]any
	if err := json.Unmarshal([]byte(sb.String()), &m); err != nil {
		t.Fatalf("%v: %s", err, sb.String())
	}
	if m["a"] != "[2001:db8::1]:443" || m["b"] != "10.0.0.2:5555" || m["first"] != "2026-11-21T12:00:00.123456789Z" || len(m) != len(track.Fields) {
		t.Fatalf("record %s", sb.String())
	}
	w, _ = track.NewWriter(io.Discard, track.FormatJSON)
	if n := testing.AllocsPerRun(100, func() { w.Write(c) }); n != 0 {
		t.Errorf("%v allocations per record", n)
	}
}
