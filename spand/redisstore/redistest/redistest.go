// Package redistest runs a real redis-server on loopback for tests: a free
// port, persistence off, a temporary directory, killed at the end of the
// test. It skips the test (fails it under CI=true) when redis-server is
// not installed.
package redistest

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// Server is a redis-server process on 127.0.0.1.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	exit chan struct{}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts redis-server on a free loopback port and waits until it
// answers PING; the test's Cleanup kills it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: testenv.LookPath(t, "redis-server", "redis-server"), dir: t.TempDir(), port: FreePort(t)}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Restart starts the server again on the same port (with an empty
// database) after Stop.
func (s *Server) Restart() {
	t := s.t
	t.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) { cmd.Wait(); close(exit) }(s.cmd, s.exit)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.exit:
			t.Fatalf("redis-server exited at start: %v", err)
		case <-time.After(20 * time.Millisecond): // poll interval, not synchronisation
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not answering after 10 s: %v", err)
		}
	}
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
}
