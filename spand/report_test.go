package spand

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

func TestReportValidate(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	good := rep("10.0.0.5", "192.0.2.10", ClassWeb, now, 1e5)
	tests := []struct {
		name   string
		mutate func(*Report)
		errHas string // "" = valid
	}{
		{"good", func(*Report) {}, ""},
		{"no local", func(r *Report) { r.Local = netip.Addr{} }, "local"},
		{"no remote", func(r *Report) { r.Remote = netip.Addr{} }, "remote"},
		{"zone", func(r *Report) { r.Remote = netip.MustParseAddr("fe80::1%eth0") }, "zone"},
		{"class", func(r *Report) { r.Class = "ftp" }, "class"},
		{"no start", func(r *Report) { r.Start = time.Time{} }, "start"},
		{"negative duration", func(r *Report) { r.Duration = -1 }, "duration_s"},
		{"NaN duration", func(r *Report) { r.Duration = math.NaN() }, "duration_s"},
		{"huge duration", func(r *Report) { r.Duration = 1e9 }, "duration_s"},
		{"negative bytes", func(r *Report) { r.Bytes = -5 }, "bytes"},
		{"inf throughput", func(r *Report) { r.Throughput = math.Inf(1) }, "throughput"},
		{"rtt", func(r *Report) { r.RTTMin = -1 }, "rtt_min_ms"},
		{"median below min", func(r *Report) { r.RTTMin, r.RTTMedian = 30, 10 }, "below"},
		{"loss over 1", func(r *Report) { r.Loss = 1.5 }, "loss"},
		{"response rate", func(r *Report) { r.ResponseRate = -1 }, "response_rate"},
		{"zero throughput ok", func(r *Report) { r.Throughput, r.Bytes = 0, 0 }, ""},
	}
	for _, tt := range tests {
		r := good
		tt.mutate(&r)
		err := r.Validate()
		switch {
		case tt.errHas == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tt.name, err)
		case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas) || !errors.Is(err, ErrInvalidReport)):
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.errHas)
		}
	}
}

func TestSides(t *testing.T) {
	tests := []struct {
		init, resp      string
		local, remote   string
		prefixes        string
		wantSwappedSide bool
	}{
		{"10.0.0.5", "192.0.2.1", "10.0.0.5", "192.0.2.1", "", false},               // LAN client
		{"192.0.2.1", "10.0.0.5", "10.0.0.5", "192.0.2.1", "", true},                // inbound to a LAN server
		{"192.168.1.10", "192.168.2.20", "192.168.1.10", "192.168.2.20", "", false}, // both local: initiator
		{"198.51.100.1", "192.0.2.1", "198.51.100.1", "192.0.2.1", "", false},       // neither: initiator
		{"192.0.2.1", "198.51.100.7", "198.51.100.7", "192.0.2.1", "198.51.100.0/24", true},
	}
	for _, tt := range tests {
		var lf LocalFunc
		if tt.prefixes != "" {
			ps, err := ParsePrefixes(tt.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			lf = LocalPrefixes(ps...)
		}
		l, r, sw := Sides(netip.MustParseAddr(tt.init), netip.MustParseAddr(tt.resp), lf)
		if l.String() != tt.local || r.String() != tt.remote || sw != tt.wantSwappedSide {
			t.Errorf("Sides(%s, %s) = %s, %s, %v; want %s, %s, %v", tt.init, tt.resp, l, r, sw, tt.local, tt.remote, tt.wantSwappedSide)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	ps, err := ParsePrefixes(" 10.1.0.0/16, 2001:db8::1 ,")
	if err != nil || len(ps) != 2 || ps[1].Bits() != 128 {
		t.Fatalf("ParsePrefixes = %v, %v", ps, err)
	}
	if _, err := ParsePrefixes("10.0.0.0/33"); err == nil {
		t.Fatal("bad prefix accepted")
	}
}

func TestReportFromConn(t *testing.T) {
	first := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	base := track.Conn{
		Proto: track.TCP, Class: track.ClassWeb,
		A:     netip.MustParseAddrPort("10.0.2.15:50000"),
		B:     netip.MustParseAddrPort("192.0.2.80:80"),
		First: first, Last: first.Add(4 * time.Second),
		AB:     track.DirStats{DataPackets: 5, UniqueBytes: 500, DataBytes: 500},
		BA:     track.DirStats{DataPackets: 100, UniqueBytes: 140_000, DataBytes: 145_600, RexmtPackets: 4, Throughput: 35_000},
		RTTMin: 70 * time.Millisecond, RTTMedian: 80 * time.Millisecond,
		Responses: 1, ResponseTime: 90 * time.Millisecond, ResponseRate: 50_000,
		Final: true,
	}
	r, ok := ReportFromConn(&base, nil)
	if !ok {
		t.Fatal("web connection gave no report")
	}
	want := Report{
		Local: netip.MustParseAddr("10.0.2.15"), Remote: netip.MustParseAddr("192.0.2.80"), Class: ClassWeb,
		Start: first, Duration: 4, Bytes: 140_000, Throughput: 35_000,
		RTTMin: 70, RTTMedian: 80, Loss: 0.04, ResponseTime: 90, ResponseRate: 50_000,
	}
	if r != want {
		t.Fatalf("report\n %+v\nwant\n %+v", r, want)
	}

	// Inbound connection to a LAN server that uploads: local is B, the
	// main direction is local->remote.
	in := base
	in.A, in.B = base.B, base.A
	in.Final = false
	in.RTTMin, in.RTTMedian, in.TSRTTMedian = 0, 0, 51*time.Millisecond
	r, ok = ReportFromConn(&in, nil)
	if !ok || r.Local.String() != "10.0.2.15" || !r.Upload || !r.Periodic || r.Bytes != 140_000 || r.RTTMedian != 51 || r.RTTMin != 0 {
		t.Fatalf("inbound report %+v, ok %v", r, ok)
	}

	for name, mutate := range map[string]func(*track.Conn){
		"other class": func(c *track.Conn) { c.Class = track.ClassOther },
		"no data":     func(c *track.Conn) { c.AB.UniqueBytes, c.BA.UniqueBytes = 0, 0 },
		"no time":     func(c *track.Conn) { c.Last = c.First },
	} {
		c := base
		mutate(&c)
		if r, ok := ReportFromConn(&c, nil); ok {
			t.Errorf("%s: got report %+v", name, r)
		}
	}
}

func TestReportRTT(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name                     string
		hs, dataMin, dataMed, ts time.Duration
		wantMin, wantMed         float64
	}{
		{"data only", 0, 70 * ms, 80 * ms, 0, 70, 80},
		{"handshake is the floor", 72 * ms, 70 * ms, 80 * ms, 0, 72, 80},
		{"NAT acks locally", 75 * ms, ms / 10, ms / 4, 0, 75, 75},
		{"NAT, timestamps fine", 75 * ms, ms / 10, ms / 4, 76 * ms, 75, 76},
		{"timestamps only", 0, 0, 0, 51 * ms, 0, 51},
		{"handshake only", 40 * ms, 0, 0, 0, 40, 40},
		{"nothing", 0, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		c := track.Conn{HandshakeRTT: tt.hs, RTTMin: tt.dataMin, RTTMedian: tt.dataMed, TSRTTMedian: tt.ts}
		if lo, med := reportRTT(&c); lo != tt.wantMin || med != tt.wantMed {
			t.Errorf("%s: rtt %v/%v, want %v/%v", tt.name, lo, med, tt.wantMin, tt.wantMed)
		}
	}
}
