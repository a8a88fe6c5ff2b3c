package testenv

import (
	"net"
	"testing"
	"time"
)

// Listen opens a TCP listener on a free loopback port (127.0.0.1:0),
// failing the test when it cannot, and closes it when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// FreeAddr returns a loopback address (127.0.0.1:port) that was free a
// moment ago, for programs that cannot be handed a listener or told to
// bind port 0. Another process may take it in between; a caller that
// cannot tolerate that retries.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	ap, err := net.ResolveTCPAddr("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port
}

// PollInterval paces Poll; it is no synchronisation, only how often the
// condition is looked at.
const PollInterval = 10 * time.Millisecond

// Poll calls cond every PollInterval until it is true and returns how long
// that took, failing the test with what when timeout passes first.
func Poll(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(PollInterval)
	}
	return time.Since(start)
}
