package track_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// corpusCaptures are the captures of ../shared/corpus/pcap with their
// ground-truth files.
var corpusCaptures = []string{
	"ndpi-ssh.pcap",
	"ndpi-telnet.pcap",
	"tcpreplay-test.pcap",
	"zeek-echo-connections.pcap.gz",
	"zeek-http-206_example_b.pcap",
	"zeek-http-bro.org.pcap",
	"zeek-ssh-ssh.pcap",
	"zeek-tcp-timestamp.pcap",
}

// groundName is the prefix of the ground-truth files of a capture.
func groundName(capture string) string {
	return strings.TrimSuffix(strings.TrimSuffix(capture, ".gz"), ".pcap")
}

// trackFile runs the tracker over a capture and returns its records in
// creation order.
func trackFile(t testing.TB, path string) []track.Conn {
	t.Helper()
	src, err := capture.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var conns []track.Conn
	tr := track.New(track.Config{Periodic: -1, OnConn: func(c *track.Conn) { conns = append(conns, *c) }})
	if _, err := capture.Run(context.Background(), src, nil, tr); err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	sortByID(conns)
	return conns
}

func sortByID(cs []track.Conn) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].ID < cs[j-1].ID; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// tcptraceConn is one row of `tcptrace -l --csv`.
type tcptraceConn struct {
	a, b netip.AddrPort
	v    map[string]float64
}

func (c tcptraceConn) get(t *testing.T, field string) float64 {
	v, ok := c.v[field]
	if !ok {
		t.Fatalf("tcptrace csv has no field %q", field)
	}
	return v
}

func readTcptraceCSV(t *testing.T, path string) []tcptraceConn {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr []string
	var out []tcptraceConn
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "conn_#,") {
			hdr = strings.Split(line, ",")
			continue
		}
		if hdr == nil || line == "" || line[0] < '0' || line[0] > '9' {
			continue
		}
		f := strings.Split(line, ",")
		c := tcptraceConn{v: map[string]float64{}}
		var ha, hb string
		var pa, pb uint64
		for i, v := range f {
			if i >= len(hdr) {
				break
			}
			v = strings.TrimSpace(v)
			switch hdr[i] {
			case "host_a":
				ha = v
			case "host_b":
				hb = v
			case "port_a":
				pa, _ = strconv.ParseUint(v, 10, 16)
			case "port_b":
				pb, _ = strconv.ParseUint(v, 10, 16)
			case "first_packet", "last_packet":
				// tcptrace prints seconds.microseconds without padding
				// the microseconds (".54417" is 054417 µs).
				sec, usec, _ := strings.Cut(v, ".")
				s, _ := strconv.ParseFloat(sec, 64)
				u, _ := strconv.ParseFloat(usec, 64)
				c.v[hdr[i]] = s + u/1e6
			default:
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					c.v[hdr[i]] = x
				}
			}
		}
		c.a = netip.AddrPortFrom(netip.MustParseAddr(ha), uint16(pa))
		c.b = netip.AddrPortFrom(netip.MustParseAddr(hb), uint16(pb))
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// tsharkStream is one row of tshark_streams.py's table.
type tsharkStream struct {
	a, b   netip.AddrPort
	irttMS float64 // NaN when absent
}

func parseEndpoint(s string) netip.AddrPort {
	i := strings.LastIndexByte(s, ':')
	p, _ := strconv.ParseUint(s[i+1:], 10, 16)
	return netip.AddrPortFrom(netip.MustParseAddr(s[:i]), uint16(p))
}

func readTsharkStreams(t *testing.T, path string) []tsharkStream {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "### per tcp.stream summary")
	if !ok {
		t.Fatalf("%s: no per-stream table", path)
	}
	var out []tsharkStream
	var cols []string
	for _, line := range strings.Split(table, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 5 {
			continue
		}
		if f[0] == "stream" {
			cols = f
			continue
		}
		s := tsharkStream{irttMS: math.NaN()}
		for i, v := range f {
			switch cols[i] {
			case "a":
				s.a = parseEndpoint(v)
			case "b":
				s.b = parseEndpoint(v)
			case "irtt_ms":
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					s.irttMS = x
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// matcher pairs ground-truth connections with tracker records by their
// endpoints, in order of occurrence (endpoints can be reused).
type matcher struct {
	conns []track.Conn
	used  []bool
}

func (m *matcher) find(a, b netip.AddrPort) (*track.Conn, bool, bool) {
	if m.used == nil {
		m.used = make([]bool, len(m.conns))
	}
	for i := range m.conns {
		c := &m.conns[i]
		if m.used[i] {
			continue
		}
		if c.A == a && c.B == b {
			m.used[i] = true
			return c, false, true
		}
		if c.A == b && c.B == a {
			m.used[i] = true
			return c, true, true
		}
	}
	return nil, false, false
}

// deviation is the worst difference found for one metric of one capture.
type deviation struct {
	n     int     // connections compared
	worst float64 // relative (or absolute, per metric) difference
	where string
}

func (d *deviation) add(v float64, where string) {
	d.n++
	if v > d.worst || d.where == "" {
		if v >= d.worst {
			d.worst, d.where = v, where
		}
	}
}

func relDiff(got, want float64) float64 {
	if want == 0 {
		if got == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// TestAccuracyAgainstTcptrace compares every TCP connection of every
// corpus capture with tcptrace's and tshark's figures, with the tolerances
// of the issue, and logs the worst deviations per capture.
func TestAccuracyAgainstTcptrace(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	var report []string
	for _, name := range corpusCaptures {
		t.Run(name, func(t *testing.T) {
			conns := trackFile(t, filepath.Join(dir, name))
			var tcp []track.Conn
			for _, c := range conns {
				if c.Proto == track.TCP {
					tcp = append(tcp, c)
				}
			}
			gt := readTcptraceCSV(t, filepath.Join(dir, groundName(name)+".tcptrace.csv"))
			if len(tcp) != len(gt) {
				t.Errorf("%d TCP connections, tcptrace has %d", len(tcp), len(gt))
			}
			telnet := strings.HasPrefix(name, "ndpi-telnet")
			var dData, dUniq, dThru, dRex, dRTT, dRTTn deviation
			m := matcher{conns: tcp}
			for _, g := range gt {
				c, swapped, ok := m.find(g.a, g.b)
				if !ok {
					t.Errorf("tcptrace connection %s - %s not found", g.a, g.b)
					continue
				}
				ab, ba := &c.AB, &c.BA
				if swapped {
					ab, ba = ba, ab
				}
				for _, d := range []struct {
					dir string
					s   *track.DirStats
				}{{"a2b", ab}, {"b2a", ba}} {
					where := fmt.Sprintf("%s-%s %s", g.a, g.b, d.dir)
					data := g.get(t, "actual_data_bytes_"+d.dir)
					uniq := g.get(t, "unique_bytes_sent_"+d.dir)
					thru := g.get(t, "throughput_"+d.dir)
					rex := g.get(t, "rexmt_data_pkts_"+d.dir)
					dpk := g.get(t, "actual_data_pkts_"+d.dir)

					dData.add(math.Abs(float64(d.s.DataBytes)-data), where)
					if !telnet && float64(d.s.DataBytes) != data {
						t.Errorf("%s: data bytes %d, tcptrace %v", where, d.s.DataBytes, data)
					}
					if r := relDiff(float64(d.s.UniqueBytes), uniq); true {
						dUniq.add(r, where)
						if r > 0.001 && !telnet {
							t.Errorf("%s: unique bytes %d, tcptrace %v", where, d.s.UniqueBytes, uniq)
						}
					}
					if dpk >= 10 {
						// tcptrace prints throughput rounded to a whole
						// byte/s: compare with its own definition on its
						// unique bytes and first/last packet times, and
						// with the printed value within the rounding.
						el := g.get(t, "last_packet") - g.get(t, "first_packet")
						r := relDiff(d.s.Throughput, uniq/el)
						dThru.add(r, where)
						if r > 0.01 || math.Abs(d.s.Throughput-thru) > max(0.5, 0.01*thru) {
							t.Errorf("%s: throughput %.2f, tcptrace %v (%.2f unrounded)", where, d.s.Throughput, thru, uniq/el)
						}
					}
					// RTT samples and minimum (tcptrace prints ms with
					// 0.1 ms precision).
					if n := g.get(t, "RTT_samples_"+d.dir); n > 0 {
						dm := math.Abs(float64(d.s.RTTMin)/1e6 - g.get(t, "RTT_min_"+d.dir))
						dn := math.Abs(float64(d.s.RTTSamples) - n)
						dRTT.add(dm, where)
						dRTTn.add(dn, where)
						// 32 outstanding segments are remembered per
						// direction, tcptrace remembers all: a few samples
						// of very large windows are lost.
						if dm > 0.051 || dn > max(2, 0.1*n) {
							t.Errorf("%s: RTT min %v (%d samples), tcptrace %v ms (%v)", where, d.s.RTTMin, d.s.RTTSamples, g.get(t, "RTT_min_"+d.dir), n)
						}
					}
					diff := math.Abs(float64(d.s.RexmtPackets) - rex)
					dRex.add(diff, where)
					if diff > max(2, 0.1*rex) {
						t.Errorf("%s: rexmt packets %d, tcptrace %v", where, d.s.RexmtPackets, rex)
					}
				}
			}
			// Handshake RTT against tshark's iRTT.
			var dHS deviation
			ms := matcher{conns: tcp}
			for _, s := range readTsharkStreams(t, filepath.Join(dir, groundName(name)+".tshark.txt")) {
				c, _, ok := ms.find(s.a, s.b)
				if !ok {
					t.Errorf("tshark stream %s - %s not found", s.a, s.b)
					continue
				}
				if math.IsNaN(s.irttMS) {
					continue
				}
				got := float64(c.HandshakeRTT) / 1e6
				diff := math.Abs(got - s.irttMS)
				dHS.add(diff, fmt.Sprintf("%s-%s", s.a, s.b))
				if diff > max(1, 0.05*s.irttMS) {
					t.Errorf("%s-%s: handshake RTT %.3f ms, tshark %.3f ms", s.a, s.b, got, s.irttMS)
				}
			}
			line := fmt.Sprintf("| %s | %d | %.0f B | %.4f %% | %.3f %% (%d) | %.0f | %.3f ms (%d) | %.3f ms / %.0f (%d) |",
				name, len(tcp), dData.worst, 100*dUniq.worst, 100*dThru.worst, dThru.n, dRex.worst, dHS.worst, dHS.n, dRTT.worst, dRTTn.worst, dRTT.n)
			t.Log(line)
			report = append(report, line)
		})
	}
	t.Logf("\n| capture | TCP conns | max |data bytes diff| | max unique bytes dev | max throughput dev (n >= 10 data pkts) | max rexmt pkts diff | max handshake RTT diff vs tshark (n) | max RTT min diff / samples diff vs tcptrace (n) |\n|---|---|---|---|---|---|---|---|\n%s",
		strings.Join(report, "\n"))
}

// TestTimestampRTT checks the pping-style RTT on the timestamp capture:
// within 5% of the 51 ms path RTT.
func TestTimestampRTT(t *testing.T) {
	conns := trackFile(t, filepath.Join(testenv.Corpus(t, "pcap"), "zeek-tcp-timestamp.pcap"))
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	c := conns[0]
	got := float64(c.TSRTTMedian) / 1e6
	if math.Abs(got-51) > 0.05*51 {
		t.Errorf("timestamp RTT median %.3f ms, want 51 ms ± 5%%", got)
	}
	if c.AB.TSRTTSamples == 0 || c.BA.TSRTTSamples == 0 {
		t.Errorf("timestamp samples a->b %d, b->a %d: want both", c.AB.TSRTTSamples, c.BA.TSRTTSamples)
	}
	t.Logf("ts RTT median %.3f ms (legs %v + %v, %d + %d samples)", got, c.AB.TSRTTMedian, c.BA.TSRTTMedian, c.AB.TSRTTSamples, c.BA.TSRTTSamples)
}
