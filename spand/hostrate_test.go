package spand

import (
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// TestLocalTablesUseHostRate: six reports of parallel connections of one
// client, each with a sixth of the link as Throughput and the whole link
// as HostRate. The local tables answer with the host rate; the remote
// tables keep the per-connection throughput; a report without a host
// rate (a proxy-mode client's) counts its Throughput as before.
func TestLocalTablesUseHostRate(t *testing.T) {
	const link = 125_000.0 // bytes/s
	a, clk := newTestAggregator(Config{Local: LocalPrefixes(), LocalPrefixes: true})
	for range 6 {
		r := rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), link/6)
		r.HostRate = link
		a.Add(r)
	}
	a.Add(rep("10.0.0.6", "192.0.2.10", ClassWeb, clk.Now(), 40_000)) // no host rate
	tests := []struct {
		addr, source string
		want         float64
	}{
		{"10.0.0.5", "local", link},
		{"10.0.0.6", "local", 40_000},     // unchanged without a host rate
		{"10.0.0.7", "localprefix", link}, // the neighbourhood: median of the six and the one
		{"192.0.2.10", "host", link / 6},  // the server's side: per connection, as before
		{"192.0.2.11", "prefix", link / 6},
	}
	for _, tt := range tests {
		p := a.Predict(netip.MustParseAddr(tt.addr), ClassWeb)
		if p.Source != tt.source || math.Abs(p.Throughput-tt.want) > 1 {
			t.Errorf("%s: %s %.0f B/s, want %s %.0f", tt.addr, p.Source, p.Throughput, tt.source, tt.want)
		}
	}
}

func TestSampleFor(t *testing.T) {
	r := rep("10.0.0.5", "192.0.2.10", ClassWeb, time.Unix(1_800_000_000, 0), 1000)
	r.HostRate = 6000
	for _, k := range (Config{LocalPrefixes: true}).Keys(&r) {
		want := float32(1000)
		if k.Kind == KindLocal || k.Kind == KindLocalPrefix {
			want = 6000
		}
		if s := SampleFor(k, &r); s.Throughput != want {
			t.Errorf("%v: throughput %v, want %v", k, s.Throughput, want)
		}
	}
}

func TestReportHostRateJSON(t *testing.T) {
	r := rep("10.0.0.5", "192.0.2.10", ClassWeb, time.Unix(1_800_000_000, 0), 1000)
	r.HostRate = 6000
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.HostRate != 6000 {
		t.Fatalf("round trip of %s: host rate %v, %v", b, back.HostRate, err)
	}
	for _, bad := range []float64{-1, math.NaN(), 2 * MaxReportRate} {
		r.HostRate = bad
		if err := r.Validate(); !errors.Is(err, ErrInvalidReport) {
			t.Errorf("host_rate %v: %v, want invalid", bad, err)
		}
	}
}

// TestReportFromConnHostRate: the report's host rate is the local host's:
// what it received for a download, what it sent for an upload, whichever
// side of the record it is.
func TestReportFromConnHostRate(t *testing.T) {
	first := time.Unix(1_800_000_000, 0)
	cli, srv := netip.MustParseAddrPort("10.0.2.15:50000"), netip.MustParseAddrPort("192.0.2.80:80")
	small := track.DirStats{DataPackets: 5, UniqueBytes: 500, SenderRate: 1, ReceiverRate: 2}
	big := track.DirStats{DataPackets: 100, UniqueBytes: 140_000, SenderRate: 3, ReceiverRate: 4}
	tests := []struct {
		name   string
		a, b   netip.AddrPort
		ab, ba track.DirStats
		want   float64
	}{
		{"download, client initiated", cli, srv, small, big, 4},
		{"upload, client initiated", cli, srv, big, small, 3},
		{"download, server initiated", srv, cli, big, small, 4},
		{"upload, server initiated", srv, cli, small, big, 3},
	}
	for _, tt := range tests {
		c := track.Conn{Proto: track.TCP, Class: track.ClassBulk, A: tt.a, B: tt.b,
			First: first, Last: first.Add(4 * time.Second), AB: tt.ab, BA: tt.ba, Final: true}
		r, ok := ReportFromConn(&c, nil)
		if !ok || r.HostRate != tt.want || r.Local != cli.Addr() {
			t.Errorf("%s: ok %v, local %v, host rate %v, want %v", tt.name, ok, r.Local, r.HostRate, tt.want)
		}
	}
}
