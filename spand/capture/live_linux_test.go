//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// liveBytes is how much the loopback bulk transfer sends; SPAND_LIVE_BYTES
// overrides it for longer experiments.
func liveBytes() int64 {
	if v, err := strconv.ParseInt(os.Getenv("SPAND_LIVE_BYTES"), 10, 64); err == nil && v > 0 {
		return v
	}
	return 256 << 20
}

// pinCubic sets TCP_CONGESTION=cubic on c (the machine's default is BBR).
func pinCubic(t *testing.T, c net.Conn) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, "cubic")
	})
	if serr != nil {
		t.Logf("cubic not available: %v", serr)
	}
}

// TestLiveLoopbackBulk captures a full-speed TCP transfer on lo with
// AF_PACKET (TPACKET_V3, kernel filter on the port) and checks the tracker
// saw it whole; it logs packets/s handled and kernel drops.
func TestLiveLoopbackBulk(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		iface string
		write int   // bytes per write; small writes with TCP_NODELAY make one packet each
		n     int64 // bytes to send
	}{
		{"lo/1MB-writes", "lo", 1 << 20, liveBytes()},
		{"lo/1400B-writes", "lo", 1400, liveBytes() / 4},
		// "any": cooked (no link header), loopback's outgoing copies
		// dropped in the kernel.
		{"any/1MB-writes", "any", 1 << 20, liveBytes() / 4},
	} {
		t.Run(tc.name, func(t *testing.T) { liveBulk(t, tc.iface, tc.write, tc.n) })
	}
}

func liveBulk(t *testing.T, iface string, write int, n int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	src := openLiveFiltered(t, iface, fmt.Sprintf("tcp port %d", port))

	type result struct {
		client   netip.AddrPort
		received int64
		err      error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		got, err := io.Copy(io.Discard, c)
		done <- result{client: c.RemoteAddr().(*net.TCPAddr).AddrPort(), received: got, err: err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pinCubic(t, c)
	c.(*net.TCPConn).SetNoDelay(true)
	start := time.Now()
	go func() {
		buf := make([]byte, write)
		for sent := int64(0); sent < n; sent += int64(len(buf)) {
			if _, err := c.Write(buf); err != nil {
				break
			}
		}
		c.Close()
	}()

	dec, err := track.NewDecoder(src.LinkType())
	if err != nil {
		t.Fatal(err)
	}
	tr := track.New(track.Config{Periodic: -1})
	var res *result
	var conn track.Conn
	var packets uint64
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, errTimeout) {
			if res != nil {
				break // everything read: nothing more came
			}
			select {
			case r := <-done:
				res = &r
			default:
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		packets++
		tr.Frame(dec, data, ci.Timestamp.UnixNano())
		if res == nil {
			select {
			case r := <-done:
				res = &r
			default:
			}
		}
		if res != nil && packets%64 == 0 {
			if cn, ok := tr.Lookup(track.TCP, res.client, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))); ok && cn.FinAB && cn.FinBA {
				conn = cn
				break
			}
		}
	}
	elapsed := time.Since(start)
	if res == nil {
		t.Fatal("transfer did not finish")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	if conn.ID == 0 {
		cn, ok := tr.Lookup(track.TCP, res.client, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
		if !ok {
			t.Fatal("connection not in the table")
		}
		conn = cn
	}
	ks, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	t.Logf("live %s, %d-byte writes: %d bytes (%d rexmt) in %v (%.2f Gbit/s), %d packets handled (%.0f packets/s), kernel packets %d drops %d freezes %d, other packets %d",
		iface, write, res.received, conn.AB.RexmtBytes, elapsed.Round(time.Millisecond), float64(n)*8/elapsed.Seconds()/1e9, packets, float64(packets)/elapsed.Seconds(),
		ks.Packets, ks.Drops, ks.QueueFreezes, st.Skipped)
	if conn.A.Port() == uint16(port) {
		t.Fatalf("A is the server: %+v", conn)
	}
	n = res.received
	if ks.Drops == 0 {
		// Loopback can retransmit under load: data bytes count those,
		// unique bytes do not. A busy receiver can also close its window,
		// and a segment sent into a zero window is a probe, counted in data
		// bytes only (tcptrace), so data bytes may exceed unique+rexmt.
		// Rexmt bytes count sequence space sent again, and a FIN sent
		// again under load is one byte of it with no payload.
		const finRexmt = 1
		if conn.AB.UniqueBytes != uint64(n) || conn.AB.DataBytes+finRexmt < conn.AB.UniqueBytes+conn.AB.RexmtBytes {
			t.Errorf("data bytes %d unique %d rexmt %d, received %d", conn.AB.DataBytes, conn.AB.UniqueBytes, conn.AB.RexmtBytes, n)
		}
		if !conn.SYN || !conn.SYNACK || conn.HandshakeRTT <= 0 {
			t.Errorf("handshake not seen: %+v", conn)
		}
	} else if conn.AB.UniqueBytes == 0 || conn.AB.UniqueBytes > uint64(n) {
		t.Errorf("unique bytes %d with %d drops, sent %d", conn.AB.UniqueBytes, ks.Drops, n)
	}
	if conn.AB.Throughput <= 0 {
		t.Errorf("throughput %v", conn.AB.Throughput)
	}
}

// openLiveFiltered opens a live capture on iface with the kernel filter
// expr, closed when the test ends.
func openLiveFiltered(t *testing.T, iface, expr string) *Live {
	t.Helper()
	f, err := CompileFilter(expr, mustLinkType(t, iface))
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenLive(LiveOptions{Interface: iface, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func mustLinkType(t *testing.T, iface string) layers.LinkType {
	lt, err := LinkTypeOf(iface)
	if err != nil {
		t.Fatal(err)
	}
	return lt
}

// TestLivePermissionError runs OpenLive without CAP_NET_RAW (this test
// binary re-executed by setpriv with the capability dropped from its
// bounding set, or directly when not root) and checks the error says what
// is missing and gives the setcap command.
func TestLivePermissionError(t *testing.T) {
	if os.Getenv("SPAND_PERMISSION_CHILD") == "1" {
		_, err := OpenLive(LiveOptions{Interface: "lo"})
		fmt.Printf("is ErrPermission: %v\nerror: %v\n", errors.Is(err, ErrPermission), err)
		return
	}
	var out []byte
	if os.Geteuid() != 0 {
		_, err := OpenLive(LiveOptions{Interface: "lo"})
		out = []byte(fmt.Sprintf("is ErrPermission: %v\nerror: %v\n", errors.Is(err, ErrPermission), err))
	} else {
		setpriv := testenv.LookPath(t, "setpriv", "util-linux")
		cmd := exec.Command(setpriv, "--bounding-set=-net_raw", "--inh-caps=-net_raw", os.Args[0], "-test.run=^TestLivePermissionError$")
		cmd.Env = append(os.Environ(), "SPAND_PERMISSION_CHILD=1")
		var err error
		if out, err = cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	for _, want := range []string{"is ErrPermission: true", "CAP_NET_RAW", "setcap cap_net_raw,cap_net_admin=eip "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("%s", out)
}

// TestLiveLoopbackPacketRate sends small UDP datagrams on lo as fast as
// one goroutine can and checks every one is either handled by the tracker
// or counted as a kernel drop; it logs the packet rate handled.
func TestLiveLoopbackPacketRate(t *testing.T) {
	testenv.RequireRoot(t)
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	port := rx.LocalAddr().(*net.UDPAddr).Port
	src := openLiveFiltered(t, "lo", fmt.Sprintf("udp and dst port %d", port))
	const n = 300000
	sent := make(chan int, 1)
	go func() {
		c, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
		if err != nil {
			sent <- 0
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		k := 0
		for ; k < n; k++ {
			if _, err := c.Write(buf); err != nil {
				break
			}
		}
		sent <- k
	}()
	dec, err := track.NewDecoder(src.LinkType())
	if err != nil {
		t.Fatal(err)
	}
	tr := track.New(track.Config{Periodic: -1})
	start := time.Now()
	var handled, total int
	total = -1
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, errTimeout) {
			if total >= 0 {
				break // sender done and nothing more in the ring
			}
			select {
			case total = <-sent:
			default:
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		handled++
		tr.Frame(dec, data, ci.Timestamp.UnixNano())
		if total < 0 {
			select {
			case total = <-sent:
			default:
			}
		}
	}
	elapsed := time.Since(start)
	ks, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("live lo, 64-byte UDP: %d sent, %d handled in %v (%.0f packets/s), kernel packets %d drops %d",
		total, handled, elapsed.Round(time.Millisecond), float64(handled)/elapsed.Seconds(), ks.Packets, ks.Drops)
	if total != n {
		t.Fatalf("sent %d of %d", total, n)
	}
	if uint64(handled)+ks.Drops != uint64(n) || tr.Stats().UDP != uint64(handled) {
		t.Errorf("handled %d + drops %d != sent %d (tracker UDP %d)", handled, ks.Drops, n, tr.Stats().UDP)
	}
}

// TestLiveQuietClose: on a loopback capture that sees nothing after a
// connection closes (the kernel filter keeps only its port), the record
// still comes, CloseLinger after its last packet plus at most LiveClockLag
// and the scan and poll intervals: Run moves the tracker's clock on its
// idle reads. Before, the record waited for the next packet.
func TestLiveQuietClose(t *testing.T) {
	testenv.RequireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	src := openLiveFiltered(t, "lo", fmt.Sprintf("tcp port %d", port))
	const linger = 2 * time.Second
	records := make(chan track.Conn, 4)
	tr := track.New(track.Config{CloseLinger: linger, Periodic: -1, OnConn: func(c *track.Conn) {
		if c.Final {
			records <- *c
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		_, err := Run(ctx, src, nil, tr)
		ran <- err
	}()
	defer func() {
		cancel()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()

	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		_, err = io.Copy(io.Discard, c)
		c.Close()
		served <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	closed := time.Now() // both sides closed: the last ACK is on its way
	limit := linger + LiveClockLag + time.Second + DefaultPollTimeout + 2*time.Second
	select {
	case r := <-records:
		wait := time.Since(closed)
		t.Logf("record %v after the close (CloseLinger %v): %s", wait.Round(time.Millisecond), linger, r.Reason)
		if r.Reason != track.EndClosed || r.AB.DataBytes != 10000 || !r.FinAB || !r.FinBA {
			t.Errorf("record %+v, want the closed 10000-byte connection", r)
		}
		if wait < linger-100*time.Millisecond {
			t.Errorf("record came %v after the close, before CloseLinger %v", wait, linger)
		}
	case <-time.After(limit):
		t.Fatalf("no record %v after the close on a quiet capture", limit)
	}
}
