package testbed

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEdge builds an edge with a shaped and an unshaped client, sends the
// same amount from the proxy host to each, and checks that the shaped one
// is held to its rate, the unshaped one is not, every socket runs cubic,
// and the origin is reachable from the proxy only.
func TestEdge(t *testing.T) {
	const rate = 2_000_000 // bit/s
	const size = 256 << 10
	e := NewEdge(t, EdgeClient{Name: "slow", Rate: rate}, EdgeClient{Name: "fast"})
	if len(e.Clients) != 2 {
		t.Fatalf("%d clients, want 2", len(e.Clients))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i, want := range []struct {
		min, max time.Duration
	}{
		// 256 KiB at 2 Mbit/s is about 1.05 s of goodput.
		{min: 900 * time.Millisecond, max: 10 * time.Second},
		{min: 0, max: 500 * time.Millisecond},
	} {
		c := e.Clients[i]
		ln, err := c.Listen("tcp", net.JoinHostPort(c.Addr.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan int64, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				got <- -1
				return
			}
			defer conn.Close()
			n, _ := io.Copy(io.Discard, conn)
			got <- n
		}()
		conn, err := e.Proxy.Dial(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if cc := congestion(t, conn); cc != "cubic" {
			t.Errorf("%s: congestion control %q, want cubic from the route", c.Name, cc)
		}
		start := time.Now()
		if _, err := conn.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		n := <-got
		d := time.Since(start)
		ln.Close()
		if n != size {
			t.Fatalf("%s received %d bytes, want %d", c.Name, n, size)
		}
		if d < want.min || d > want.max {
			t.Errorf("%s: %d bytes took %v, want %v..%v", c.Name, size, d, want.min, want.max)
		}
		t.Logf("%s: %d bytes in %v", c.Name, size, d)
	}

	// The origin answers the proxy's WAN address and no client.
	ln, err := e.Origin.Listen("tcp", net.JoinHostPort(e.Origin.Addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if c, err := e.Proxy.Dial(ctx, "tcp", ln.Addr().String()); err != nil {
		t.Errorf("proxy to origin: %v", err)
	} else {
		c.Close()
	}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if c, err := e.Clients[1].Dial(short, "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("a client reached the origin directly; only the proxy should")
	}
}

func congestion(t *testing.T, c net.Conn) string {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cc string
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cc, serr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return cc
}
