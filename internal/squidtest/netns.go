package squidtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "squid.conf"), []byte(s.Conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chownForSquid(dir); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "squid.out"))
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec enters the namespace and execs squid: the pid and
	// the process group are Squid's.
	s.cmd = exec.Command(ip, "netns", "exec", nc.Namespace, bin, "-N", "-f", filepath.Join(dir, "squid.conf"))
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("squidtest: start squid in %s: %v", nc.Namespace, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("squidtest: squid.conf:\n%s\ncache.log:\n%s\naccess.log:\n%s", s.Conf, tail(s.CacheLog(), 4000), tail(s.AccessLog(), 2000))
		}
		s.kill()
	})
	timeout := nc.StartTimeout
	if timeout == 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		c, err := nc.Dial(ctx, "tcp", nc.Listen)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("squidtest: squid exited during startup (%v): %s", s.err, tail(s.CacheLog()+s.readFile("squid.out"), 2000))
		case <-ctx.Done():
			t.Fatalf("squidtest: squid did not listen on %s in %s within %v: %s", nc.Listen, nc.Namespace, timeout, tail(s.CacheLog(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
