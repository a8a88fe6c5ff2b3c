package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

func runOffline(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func corpusFile(t *testing.T, name string) string {
	return filepath.Join(testenv.Corpus(t, "pcap"), name)
}

// TestOfflineJSON checks `spand -r FILE -o json`: one object per TCP
// connection per line, exactly the documented fields in order, with the
// values of the timestamp capture.
func TestOfflineJSON(t *testing.T) {
	out, _, err := runOffline(t, "-r", corpusFile(t, "zeek-tcp-timestamp.pcap"), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1:\n%s", len(lines), out)
	}
	// Field order, from the raw text.
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	var keys []string
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		dec.Decode(&v)
	}
	want := []string{"a", "b", "class", "first", "last", "elapsed_s", "pkts_a2b", "pkts_b2a",
		"data_bytes_a2b", "data_bytes_b2a", "unique_bytes_a2b", "unique_bytes_b2a", "rexmt_pkts_a2b", "rexmt_pkts_b2a",
		"throughput_a2b", "throughput_b2a", "rtt_handshake_ms", "rtt_min_ms", "rtt_median_ms", "rtt_ts_median_ms", "complete"}
	if !slices.Equal(keys, want) {
		t.Errorf("fields %v\nwant %v", keys, want)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &c); err != nil {
		t.Fatal(err)
	}
	first, err := time.Parse(time.RFC3339Nano, c["first"].(string))
	if err != nil || !first.Equal(time.Date(2018, 8, 6, 19, 56, 0, 505285000, time.UTC)) {
		t.Errorf("first %v (%v)", c["first"], err)
	}
	checks := map[string]any{
		"a": "192.168.1.10:60706", "b": "192.168.2.20:12345", "class": "bulk",
		"pkts_a2b": 185.0, "pkts_b2a": 693.0, "data_bytes_b2a": 1e6, "unique_bytes_b2a": 1e6,
		"rexmt_pkts_b2a": 0.0, "elapsed_s": 0.549132, "complete": true,
	}
	for k, v := range checks {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	if tp := c["throughput_b2a"].(float64); tp < 1821055 || tp > 1821056 {
		t.Errorf("throughput_b2a %v, want 1e6/0.549132", tp)
	}
	if hs := c["rtt_handshake_ms"].(float64); hs < 51 || hs > 51.5 {
		t.Errorf("rtt_handshake_ms %v", hs)
	}
}

// TestOfflineFormatsAndFilter: CSV and table carry one row per connection,
// and -f keeps only what the filter accepts.
func TestOfflineFormatsAndFilter(t *testing.T) {
	file := corpusFile(t, "zeek-http-bro.org.pcap")
	out, _, err := runOffline(t, "-r", file, "-o", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 14 || rows[0] != strings.Join(track.Fields, ",") {
		t.Errorf("csv: %d rows, header %q", len(rows), rows[0])
	}
	out, _, err = runOffline(t, "-r", file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 14 {
		t.Errorf("table: %d lines, want 14:\n%s", n, out)
	}
	out, _, err = runOffline(t, "-r", file, "-o", "json", "-f", "tcp port 55079")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, `"a":"10.0.2.15:55079"`) {
		t.Errorf("filtered: %d lines:\n%s", n, out)
	}
	// UDP flows on request (tcpreplay-test has DNS).
	out, _, err = runOffline(t, "-r", corpusFile(t, "tcpreplay-test.pcap"), "-o", "json", "-udp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, ":53\"") {
		t.Errorf("-udp output has no DNS flow:\n%s", out)
	}
}

func TestOfflineErrors(t *testing.T) {
	notPcap := filepath.Join(t.TempDir(), "x.pcap")
	os.WriteFile(notPcap, []byte("hello, not a capture"), 0o600)
	file := corpusFile(t, "zeek-tcp-timestamp.pcap")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-r", "/nonexistent.pcap"}, "no such file"},
		{[]string{"-r", notPcap}, "not a pcap or pcapng file"},
		{[]string{"-r", file, "-o", "xml"}, "output format"},
		{[]string{"-r", file, "-f", "tcp and ("}, "filter"},
		{[]string{"-r", file, "-i", "lo"}, "exclude"},
		{[]string{"-r", file, "extra"}, "unexpected argument"},
		{[]string{}, "usage"},
	} {
		_, stderr, err := runOffline(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+stderr, tc.want) {
			t.Errorf("%v: err %v, stderr %q; want %q", tc.args, err, stderr, tc.want)
		}
	}
}

// TestOfflineCutShort: a capture cut in the middle of a packet is read up
// to there, with a warning.
func TestOfflineCutShort(t *testing.T) {
	b, err := os.ReadFile(corpusFile(t, "zeek-http-bro.org.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	os.WriteFile(cut, b[:100000], 0o600)
	out, stderr, err := runOffline(t, "-r", cut, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n < 1 || n >= 13 {
		t.Errorf("%d records from a cut capture", n)
	}
	if !strings.Contains(stderr, "ends in the middle of a packet") {
		t.Errorf("no warning: %q", stderr)
	}
}

// TestOfflineCPUProfile: -cpuprofile writes a profile pprof can read.
func TestOfflineCPUProfile(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	if _, _, err := runOffline(t, "-r", corpusFile(t, "zeek-tcp-timestamp.pcap"), "-o", "json", "-cpuprofile", prof); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	// pprof files are gzip-compressed protocol buffers.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile of %d bytes is not gzip", len(b))
	}
}
