package squidtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// NetnsConfig describes a Squid run inside a network namespace the test
// made (see internal/testbed), serving clients of other namespaces.
type NetnsConfig struct {
	Config
	// Namespace is the network namespace's name (as in `ip netns list`).
	Namespace string
	// Listen is the http_port address inside the namespace, e.g.
	// 10.201.2.1:3128.
	Listen string
	// Allow are the client networks (CIDR) admitted besides localhost.
	Allow []string
	// Dial opens a TCP connection from inside the namespace; StartNetns
	// uses it to see when Squid listens.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// StartNetns starts Squid inside nc.Namespace (ip netns exec) with the
// squid.conf Start would write, listening on nc.Listen and admitting
// nc.Allow, and waits until it accepts connections. Squid is stopped in
// t.Cleanup. It skips the test when squid or ip is missing (fails under
// CI=true).
func StartNetns(t testing.TB, nc NetnsConfig) *Squid {
	t.Helper()
	bin := testenv.LookPath(t, "squid", "squid")
	ip := testenv.LookPath(t, "ip", "iproute2")
	if nc.Namespace == "" || nc.Listen == "" || nc.Dial == nil {
		t.Fatal("squidtest: StartNetns needs Namespace, Listen and Dial")
	}
	dir, err := newDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Squid{Addr: nc.Listen, Dir: dir, exited: make(chan struct{})}
	conf := nc.render(dir, nc.Listen, os.Geteuid() == 0)
	var acl strings.Builder
	acl.WriteString("http_access allow localhost\n")
	if len(nc.Allow) > 0 {
		fmt.Fprintf(&acl, "acl netns_clients src %s\nhttp_access allow netns_clients\n", strings.Join(nc.Allow, " "))
	}
	s.Conf = strings.Replace(conf, "http_access allow localhost\n", acl.String(), 1)
	// ip netns exec enters the namespace and execs squid: the pid and
	// the process group are Squid's.
	if err := s.launch(t, ip, "netns", "exec", nc.Namespace, bin); err != nil {
		t.Fatalf("squidtest: in namespace %s: %v", nc.Namespace, err)
	}
	if err := s.waitListening(nc.Dial, nc.Listen, nc.StartTimeout); err != nil {
		t.Fatalf("squidtest: in namespace %s: %v", nc.Namespace, err)
	}
	return s
}
