package testbed

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Sink is a TCP server inside a host that reads and discards everything
// each connection sends, counting the bytes per connection: the receiver's
// goodput, as the application sees it.
type Sink struct {
	ln    net.Listener
	mu    sync.Mutex
	flows map[string]*atomic.Int64 // by the sender's address
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewSink listens on h.Addr:port (0 picks a free port) and serves until the
// test ends.
func (h *Host) NewSink(t testing.TB, port int) *Sink {
	t.Helper()
	ln, err := h.Listen("tcp", net.JoinHostPort(h.Addr.String(), itoa(port)))
	if err != nil {
		t.Fatalf("testbed: sink on %s: %v", h.Name, err)
	}
	s := &Sink{ln: ln, flows: make(map[string]*atomic.Int64)}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr is the address to dial.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

func (s *Sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := new(atomic.Int64)
		s.mu.Lock()
		s.flows[c.RemoteAddr().String()] = n
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				k, err := c.Read(buf)
				n.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
}

// Received returns how many bytes the connection from the sender's local
// address from has delivered so far (0 before it was accepted).
func (s *Sink) Received(from net.Addr) int64 {
	s.mu.Lock()
	n := s.flows[from.String()]
	s.mu.Unlock()
	if n == nil {
		return 0
	}
	return n.Load()
}

// Close stops the sink and closes its connections.
func (s *Sink) Close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Dialer returns a dialer that pins the congestion control of its sockets
// to cc ("cubic", "reno", "bbr") with TCP_CONGESTION before they connect:
// the machine default is BBR, and a namespace's sysctl cannot change it.
func Dialer(cc string) *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// Blast writes to c until it fails (the connection closed or its deadline
// passed) and returns how many bytes the writes accepted. A closed or timed
// out connection is the normal end and not an error.
func Blast(c net.Conn) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || isTimeout(err) {
				return n, nil
			}
			return n, err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
