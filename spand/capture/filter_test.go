package capture

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/track"
	"github.com/edgeadapt/edgeadapt/spand/track/tracktest"
)

var corpusFiles = []string{
	"ndpi-ssh.pcap", "ndpi-telnet.pcap", "tcpreplay-test.pcap", "zeek-echo-connections.pcap.gz",
	"zeek-http-206_example_b.pcap", "zeek-http-bro.org.pcap", "zeek-ssh-ssh.pcap", "zeek-tcp-timestamp.pcap",
}

var filterExprs = []string{
	"tcp", "udp", "ip", "ip6", "icmp", "arp",
	"port 80", "tcp port 80", "udp port 53", "src port 22", "dst port 7000",
	"host 192.168.72.14", "src host 10.0.2.15", "dst host 65.54.95.206",
	"net 192.168.0.0/16", "net 10.0.0.0 mask 255.0.0.0", "src net 172.16.0.0/12",
	"not tcp", "tcp and not port 22", "(tcp or udp) and host 172.16.11.12",
	"host 2606:4700::6812:69c", "ip6 and tcp", "port 80 or port 443",
	"host 192.168.0.1 or 192.168.0.2", "!(udp) && port 22", "dst net 2001:4958::/32",
	"src or dst host 127.0.0.1 and tcp",
}

type frame struct {
	data []byte
	wire int
}

func readAll(t *testing.T, path string) ([]frame, layers.LinkType) {
	t.Helper()
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []frame
	for {
		data, ci, err := f.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{append([]byte(nil), data...), ci.Length})
	}
	return out, f.LinkType()
}

// goldenDD holds tcpdump -dd's programs for filterExprs on Ethernet (the
// link type of every corpus capture), so that the agreement test runs
// where tcpdump is not installed. SPAND_UPDATE_GOLDEN=1 rewrites it from
// the local tcpdump.
const goldenDD = "testdata/tcpdump-dd-ethernet.txt"

// tcpdumpPrograms returns tcpdump's program for each of filterExprs: from
// tcpdump when installed (checked against the golden file), else from the
// golden file.
func tcpdumpPrograms(t *testing.T) map[string][]bpf.RawInstruction {
	progs := map[string][]bpf.RawInstruction{}
	golden, gerr := os.ReadFile(goldenDD)
	if gerr == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
			expr, prog, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("%s: bad line %q", goldenDD, line)
			}
			raw, err := parseDD([]byte(strings.ReplaceAll(prog, "} {", "}\n{")))
			if err != nil {
				t.Fatalf("%s: %q: %v", goldenDD, expr, err)
			}
			progs[expr] = raw
		}
	}
	path, err := exec.LookPath("tcpdump")
	if err != nil {
		if gerr != nil {
			t.Fatalf("no tcpdump and no %s: %v", goldenDD, gerr)
		}
		t.Logf("tcpdump not installed: programs from %s", goldenDD)
		return progs
	}
	var out strings.Builder
	for _, expr := range filterExprs {
		f, err := CompileTcpdump(path, expr, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if g, ok := progs[expr]; ok && !slices.Equal(g, f.Raw) {
			t.Logf("%q: this tcpdump compiles differently from %s (the verdicts are compared below)", expr, goldenDD)
		}
		progs[expr] = f.Raw
		fmt.Fprintf(&out, "%s\t", expr)
		for _, r := range f.Raw {
			fmt.Fprintf(&out, "{ 0x%x, %d, %d, 0x%08x } ", r.Op, r.Jt, r.Jf, r.K)
		}
		out.WriteString("\n")
	}
	if os.Getenv("SPAND_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(goldenDD, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return progs
}

// TestBuiltinFilterAgreesWithTcpdump runs tcpdump's program and the
// built-in compiler's in the same user-space VM over every packet of the
// corpus: they must accept exactly the same packets.
func TestBuiltinFilterAgreesWithTcpdump(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	progs := tcpdumpPrograms(t)
	for _, name := range corpusFiles {
		frames, lt := readAll(t, filepath.Join(dir, name))
		if lt != layers.LinkTypeEthernet {
			t.Fatalf("%s: link type %s, the golden programs are for Ethernet", name, lt)
		}
		for _, expr := range filterExprs {
			want, err := newFilter(expr, "tcpdump", progs[expr])
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			got, err := CompileBuiltin(expr, lt)
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			n, diff := 0, 0
			for _, fr := range frames {
				w, g := want.Match(fr.data, fr.wire), got.Match(fr.data, fr.wire)
				if w {
					n++
				}
				if w != g {
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%s %q: %d of %d packets judged differently (tcpdump accepts %d)", name, expr, diff, len(frames), n)
			}
		}
	}
}

// TestBuiltinFilterCountsTCP checks the built-in "tcp" and "udp" accept the
// packets the tracker counts as TCP and UDP (no tcpdump needed).
func TestBuiltinFilterCountsTCP(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	for _, name := range corpusFiles {
		frames, lt := readAll(t, filepath.Join(dir, name))
		dec, err := track.NewDecoder(lt)
		if err != nil {
			t.Fatal(err)
		}
		tr := track.New(track.Config{})
		for _, fr := range frames {
			tr.Frame(dec, fr.data, 0)
		}
		for _, tc := range []struct {
			expr string
			want uint64
		}{{"tcp", tr.Stats().TCP}, {"udp", tr.Stats().UDP}} {
			f, err := CompileBuiltin(tc.expr, lt)
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			for _, fr := range frames {
				if f.Match(fr.data, fr.wire) {
					n++
				}
			}
			if n != tc.want {
				t.Errorf("%s: %q accepts %d packets, tracker saw %d", name, tc.expr, n, tc.want)
			}
		}
	}
}

func TestBuiltinFilterErrors(t *testing.T) {
	for _, expr := range []string{
		"host", "port 99999", "port http", "host example.com", "tcp and", "(tcp", "tcp)", "foo 1",
		"icmp port 3", "ip host 2001:db8::1", "net 10.0.0.1 mask 255.0",
	} {
		if _, err := CompileBuiltin(expr, layers.LinkTypeEthernet); !errors.Is(err, ErrFilter) {
			t.Errorf("%q: err = %v, want ErrFilter", expr, err)
		}
	}
	if _, err := CompileBuiltin("tcp", layers.LinkType(147)); !errors.Is(err, ErrFilter) {
		t.Errorf("unknown link type: err = %v", err)
	}
}

// TestBuiltinFilterLinkTypes compiles for every supported link type and
// checks a TCP/IPv4 frame of that type is accepted by "tcp port 80" and
// rejected by "udp".
func TestBuiltinFilterLinkTypes(t *testing.T) {
	for lt, frame := range testFrames(t) {
		f, err := CompileBuiltin("tcp port 80 and host 10.0.0.1", lt)
		if err != nil {
			t.Fatalf("%s: %v", lt, err)
		}
		if !f.Match(frame, len(frame)) {
			t.Errorf("%s: tcp port 80 rejected a TCP port 80 frame", lt)
		}
		u, _ := CompileBuiltin("udp or port 81", lt)
		if u.Match(frame, len(frame)) {
			t.Errorf("%s: udp accepted a TCP frame", lt)
		}
	}
}

func testFrames(t testing.TB) map[layers.LinkType][]byte {
	out := map[layers.LinkType][]byte{}
	for _, lt := range tracktest.LinkTypes {
		out[lt] = tracktest.Frame(lt, tracktest.Segment{
			Src: netip.MustParseAddrPort("10.0.0.1:1234"), Dst: netip.MustParseAddrPort("10.0.0.2:80"),
			ACK: true, Seq: 1, Ack: 1, Window: 1000, Payload: []byte("GET / HTTP/1.1\r\n\r\n"),
		})
	}
	return out
}
