package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testbed"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Mode is how the proxy host serves the clients.
type Mode string

const (
	// ModeSquid: Squid on the client-facing address calls icapd over ICAP
	// on the proxy host's loopback.
	ModeSquid Mode = "squid"
	// ModeProxy: icapd is the HTTP proxy itself (-proxy), no Squid.
	ModeProxy Mode = "proxy"
)

// ProxyPort is where Squid or icapd's proxy listens on the proxy host's
// client-facing address; spand classifies port 3128 as web traffic.
const ProxyPort = "3128"

// Addresses of the daemons on the proxy host's loopback.
const (
	icapAddr  = "127.0.0.1:1344"
	adminAddr = "127.0.0.1:9090"
	spandAddr = "127.0.0.1:7070"
)

// DefaultStartTimeout bounds the start of each daemon.
const DefaultStartTimeout = 30 * time.Second

// Binaries are the paths of the built icapd and spand.
type Binaries struct {
	Icapd, Spand string
}

// Proc is a daemon running inside a namespace.
type Proc struct {
	Name string
	Log  testenv.SyncBuffer // its standard output and error
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc runs bin with args inside h (ip netns exec); it is stopped
// when the test ends.
func StartProc(t testing.TB, h *testbed.Host, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: filepath.Base(bin), done: make(chan struct{})}
	p.cmd = h.Command(context.Background(), bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.Log, &p.Log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", p.Name, h.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, tail(p.Log.String(), 6000))
		}
	})
	return p
}

// Stop sends SIGTERM, then SIGKILL after 10 s, and waits for the exit.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitLog waits until the output contains s; it fails the test if the
// process exits first or after timeout.
func (p *Proc) WaitLog(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(p.Log.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.Name, p.err, s, tail(p.Log.String(), 4000))
		case <-deadline:
			t.Fatalf("%s did not log %q within %v:\n%s", p.Name, s, timeout, tail(p.Log.String(), 4000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StackConfig says what runs on the proxy host.
type StackConfig struct {
	Mode   Mode
	Bins   Binaries
	Policy string // icapd -policy file
	// Allow are the client networks Squid admits (Squid mode).
	Allow []string
}

// Stack is the proxy host's daemons: spand capturing on the client-facing
// interface, icapd asking it about clients, and Squid in Squid mode.
type Stack struct {
	// ProxyAddr is what clients use as their HTTP proxy.
	ProxyAddr string
	Spand     *Proc
	Icapd     *Proc
	Squid     *squidtest.Squid // nil in proxy mode

	host   *testbed.Host
	client *http.Client // from inside the proxy host
	spandC *spand.Client
}

// StartStack starts spand, then icapd, then Squid (in Squid mode) on e's
// proxy host, each once it is ready. spand has no configuration naming a
// client: it learns whatever crosses lan0.
func StartStack(t testing.TB, e *testbed.Edge, cfg StackConfig) *Stack {
	t.Helper()
	h := e.Proxy
	s := &Stack{host: h, ProxyAddr: net.JoinHostPort(h.Addr.String(), ProxyPort)}
	s.client = &http.Client{
		Transport: &http.Transport{DialContext: h.Dial},
		Timeout:   5 * time.Second,
	}
	s.spandC = &spand.Client{BaseURL: "http://" + spandAddr, HTTPClient: s.client, CacheTTL: -1}

	s.Spand = StartProc(t, h, cfg.Bins.Spand, "-i", testbed.EdgeLANIface, "-f", "tcp port "+ProxyPort, "-serve", spandAddr)
	s.Spand.WaitLog(t, "capturing", DefaultStartTimeout)
	s.waitHealthy(t, s.Spand, "http://"+spandAddr+"/healthz")

	// icapd needs an ICAP listener even in proxy mode, where nobody
	// calls it.
	args := []string{"-listen", icapAddr, "-admin", adminAddr, "-policy", cfg.Policy, "-spand", "http://" + spandAddr, "-log-level", "info"}
	switch cfg.Mode {
	case ModeSquid:
		args = append(args, "-proxy", "off") // Squid is the proxy
	case ModeProxy:
		args = append(args, "-proxy", s.ProxyAddr)
	default:
		t.Fatalf("e2e: mode %q", cfg.Mode)
	}
	s.Icapd = StartProc(t, h, cfg.Bins.Icapd, args...)
	s.waitHealthy(t, s.Icapd, "http://"+adminAddr+"/healthz")

	if cfg.Mode == ModeSquid {
		s.Squid = squidtest.StartNetns(t, squidtest.NetnsConfig{
			Config: squidtest.Config{Services: []squidtest.Service{
				{Name: "edge_req", Point: squidtest.ReqmodPrecache, URL: "icap://" + icapAddr + "/reqmod"},
				{Name: "edge_resp", Point: squidtest.RespmodPrecache, URL: "icap://" + icapAddr + "/respmod"},
			}},
			Namespace: h.Name,
			Listen:    s.ProxyAddr,
			Allow:     cfg.Allow,
			Dial:      h.Dial,
		})
	} else {
		s.waitDial(t, s.ProxyAddr)
	}
	// Registered last, so it runs before the daemons stop.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy host state:\n%s", s.Dump())
		}
	})
	return s
}

// Stop stops the daemons (Squid first), so a new Stack can start on the
// same host with nothing learned.
func (s *Stack) Stop() {
	if s.Squid != nil {
		s.Squid.Stop()
	}
	s.Icapd.Stop()
	s.Spand.Stop()
}

// Dump returns what spand and icapd say about themselves (their metrics
// and spand's hosts), for the log of a failed test.
func (s *Stack) Dump() string {
	var b strings.Builder
	for _, u := range []string{"http://" + spandAddr + "/v1/hosts", "http://" + spandAddr + "/metrics", "http://" + adminAddr + "/metrics"} {
		fmt.Fprintf(&b, "GET %s:\n", u)
		resp, err := s.client.Get(u)
		if err != nil {
			fmt.Fprintf(&b, "%v\n", err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		b.Write(body)
		b.WriteString("\n")
	}
	return b.String()
}

// Predict asks spand what it knows about addr's web transfers (no cache).
func (s *Stack) Predict(ctx context.Context, addr netip.Addr) (spand.Prediction, error) {
	return s.spandC.Predict(ctx, addr, spand.ClassWeb)
}

// predictOrZero is Predict for log lines: the zero Prediction on error.
func (s *Stack) predictOrZero(addr netip.Addr) spand.Prediction {
	p, _ := s.Predict(context.Background(), addr)
	return p
}

// WaitKnown polls spand until ok accepts its prediction for addr, and
// returns that prediction and how long it took; it fails the test after
// timeout.
func (s *Stack) WaitKnown(t testing.TB, addr netip.Addr, timeout time.Duration, ok func(spand.Prediction) bool) (spand.Prediction, time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last spand.Prediction
	for {
		p, err := s.Predict(ctx, addr)
		if err == nil {
			last = p
			if ok(p) {
				return p, time.Since(start)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("spand: no acceptable prediction for %s within %v; last %+v, err %v", addr, timeout, last, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitHealthy polls u (from inside the proxy host) until it answers 200;
// it fails the test if p exits first or after DefaultStartTimeout.
func (s *Stack) waitHealthy(t testing.TB, p *Proc, u string) {
	t.Helper()
	deadline := time.After(DefaultStartTimeout)
	for {
		resp, err := s.client.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-p.done:
			t.Fatalf("%s exited (%v) while waiting for %s:\n%s", p.Name, p.err, u, tail(p.Log.String(), 4000))
		case <-deadline:
			t.Fatalf("%s not healthy within %v (%v)", u, DefaultStartTimeout, err)
		}
	}
}

func (s *Stack) waitDial(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStartTimeout)
	defer cancel()
	for {
		c, err := s.host.Dial(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nothing listens on %s: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WritePassPolicy writes a policy with no rules to dir: every message
// passes unchanged (ICAP 204), the baseline of the experiment.
func WritePassPolicy(dir string) (string, error) {
	p := filepath.Join(dir, "pass.toml")
	return p, os.WriteFile(p, []byte("# No rules: every message passes unchanged (the experiment's baseline).\n"), 0o644)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
