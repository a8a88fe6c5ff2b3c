package testbed

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// goodput sends with one cubic flow from the sender to the receiver and
// returns the receiver's goodput in bit/s over a window that starts after
// warm.
func goodput(t *testing.T, tb *Testbed, sink *Sink, warm, window time.Duration) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tb.Senders[0].DialWith(ctx, Dialer("cubic"), "tcp", sink.Addr())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Blast(c)
		done <- err
	}()
	<-time.After(warm)
	n0, t0 := sink.Received(c.LocalAddr()), time.Now()
	<-time.After(window)
	n1, t1 := sink.Received(c.LocalAddr()), time.Now()
	// Abort: a graceful close would leave megabytes in the send buffer
	// draining through the bottleneck into the next measurement.
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("sender: %v", err)
	}
	return float64(n1-n0) * 8 / t1.Sub(t0).Seconds()
}

func TestGoodputFollowsTheBottleneck(t *testing.T) {
	tb := New(t, Topology{Rate: 10_000_000})
	sink := tb.Receivers[0].NewSink(t, 0)
	for _, rate := range []int64{10_000_000, 4_000_000} {
		if rate != tb.Rate() {
			if err := tb.SetRate(rate, 0); err != nil {
				t.Fatal(err)
			}
		}
		before, err := tb.Bottleneck()
		if err != nil {
			t.Fatal(err)
		}
		got := goodput(t, tb, sink, time.Second, 3*time.Second)
		after, err := tb.Bottleneck()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rate %d bit/s: goodput %.0f bit/s (%.1f%%), tbf sent %d bytes, dropped %d packets",
			rate, got, 100*got/float64(rate), after.Bytes-before.Bytes, after.Drops-before.Drops)
		// The tbf counts whole frames: a full segment carries 1448 bytes
		// of payload in 1514 (Ethernet 14, IP 20, TCP 20 + timestamps
		// 12), so a saturated link delivers at most 95.6% of its rate as
		// goodput. A loss recovery moves about one srtt of bytes across
		// the window's edges, hence 3 s windows.
		payload := float64(rate) * 1448 / 1514
		if got < 0.9*payload || got > 1.1*payload {
			t.Errorf("rate %d bit/s: goodput %.0f bit/s, want within ±10%% of the payload rate %.0f", rate, got, payload)
		}
		if after.Bytes <= before.Bytes {
			t.Errorf("rate %d: the tbf counted no traffic (%d → %d bytes): the flow did not cross the bottleneck", rate, before.Bytes, after.Bytes)
		}
	}
}

func TestDoEntersTheNamespace(t *testing.T) {
	tb := New(t, Topology{Senders: 2})
	for _, h := range append(tb.Senders, tb.Receivers...) {
		var addrs []net.Addr
		err := h.Do(func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			addrs, err = ifc.Addrs()
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		found := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.String() == h.Addr.String() {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: eth0 has %v, want %v", h.Name, addrs, h.Addr)
		}
	}
	// The calling thread is back in the root namespace: no such address.
	if _, err := net.Listen("tcp", tb.Senders[1].Addr.String()+":0"); err == nil {
		t.Errorf("listening on %v outside the namespace succeeded", tb.Senders[1].Addr)
	}
	out, err := tb.Router.Run(context.Background(), "cat", "/proc/sys/net/ipv4/ip_forward")
	if err != nil || string(out) != "1\n" {
		t.Errorf("router ip_forward = %q, %v; want 1", out, err)
	}
}

func TestBlackholeCutsThePath(t *testing.T) {
	tb := New(t, Topology{})
	sink := tb.Receivers[0].NewSink(t, 0)
	if err := tb.Blackhole(tb.Receivers[0], true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := tb.Senders[0].Dial(ctx, "tcp", sink.Addr())
	cancel()
	// The net package reports an expired dial context either as
	// context.DeadlineExceeded or as its own timeout (os.ErrDeadlineExceeded,
	// "i/o timeout"), depending on where the dial was waiting.
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("dial through the blackhole: err = %v, want a timeout", err)
	}
	if err := tb.Blackhole(tb.Receivers[0], false); err != nil {
		t.Fatal(err)
	}
	c, err := tb.Senders[0].Dial(context.Background(), "tcp", sink.Addr())
	if err != nil {
		t.Fatalf("dial after removing the blackhole: %v", err)
	}
	c.Close()
}

func TestCloseRemovesEverything(t *testing.T) {
	tb := New(t, Topology{Senders: 2, Receivers: 2})
	names := []string{tb.Router.Name}
	for _, h := range append(tb.Senders, tb.Receivers...) {
		names = append(names, h.Name)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Close (stat: %v)", n, err)
		}
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSweepRemovesNamespacesOfDeadProcesses(t *testing.T) {
	New(t, Topology{}) // skips without root; also proves Sweep spares live owners
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := namePrefix + strconv.Itoa(cmd.Process.Pid) + "-000000-r"
	if err := addNS(dead); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delNS(dead) })
	live := namePrefix + strconv.Itoa(os.Getpid()) + "-000000-r"
	if err := addNS(live); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delNS(live) })
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s survived Sweep", dead)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, live)); err != nil {
		t.Errorf("namespace %s of a live process was swept: %v", live, err)
	}
}

func TestOwnerPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"tb-123-abcdef-r", 123, true},
		{"tb-9-00-s0", 9, true},
		{"tb-x-abc-r", 0, false},
		{"tb-0-abc-r", 0, false},
		{"other-123-abc", 0, false},
		{"tb-123", 0, false},
	} {
		pid, ok := ownerPID(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("ownerPID(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}
