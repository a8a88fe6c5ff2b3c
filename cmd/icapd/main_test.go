package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// daemon is an icapd process started by a test.
type daemon struct {
	cmd        *exec.Cmd
	icap, adm  string
	mu         sync.Mutex
	stderr     bytes.Buffer
	exited     chan struct{}
	exitStatus int
}

var startedRE = regexp.MustCompile(`msg="icapd started" icap=(\S*) icaps=\S* admin=(\S*)`)

var build testenv.BuildOnce

// buildIcapd builds the binary once per test run (removed in TestMain).
func buildIcapd(t *testing.T) string {
	t.Helper()
	return filepath.Join(build.Dir(t, "", "./cmd/icapd"), "icapd")
}

func TestMain(m *testing.M) {
	code := m.Run()
	build.Remove()
	os.Exit(code)
}

// startIcapd runs bin with args and waits for its "icapd started" line.
func startIcapd(t *testing.T, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.stderr.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := startedRE.FindStringSubmatch(sc.Text()); m != nil {
				started <- m
			}
		}
	}()
	go func() {
		err := d.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			d.exitStatus = ee.ExitCode()
		}
		pw.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
		if t.Failed() {
			t.Logf("icapd stderr:\n%s", d.log())
		}
	})
	select {
	case m := <-started:
		d.icap, d.adm = m[1], m[2]
	case <-d.exited:
		t.Fatalf("icapd exited with %d before starting:\n%s", d.exitStatus, d.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("icapd did not start:\n%s", d.log())
	}
	return d
}

// waitLog waits until the daemon's log holds substr (it is copied from
// the child's stderr by another goroutine, so it may lag what the daemon
// already did), and fails the test with why after 10 s.
func (d *daemon) waitLog(t *testing.T, substr, why string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.log(), substr); {
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s", why, d.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

func (d *daemon) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.exited:
		return d.exitStatus
	case <-time.After(30 * time.Second):
		t.Fatalf("icapd did not exit:\n%s", d.log())
		return -1
	}
}

// TestSIGTERMDuringTransfer builds icapd, starts a RESPMOD whose body
// trickles in, sends SIGHUP (logged, ignored) then SIGTERM in the middle:
// icapd stops accepting, the transfer completes, and icapd exits 0.
func TestSIGTERMDuringTransfer(t *testing.T) {
	testenv.LookPath(t, "go", "golang")
	bin := buildIcapd(t)
	d := startIcapd(t, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-proxy", "off", "-shutdown-timeout", "20s")

	pr, pw := io.Pipe()
	hreq, _ := http.NewRequest("GET", "http://origin.test/big", nil)
	req, err := icap.NewRequest(icap.MethodRESPMOD, "icap://"+d.icap+"/echo", hreq,
		&http.Response{StatusCode: 200, Proto: "HTTP/1.1", Header: http.Header{"Content-Type": {"application/octet-stream"}}})
	if err != nil {
		t.Fatal(err)
	}
	req.Body = pr
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	respc := make(chan *icap.Response, 1)
	errc := make(chan error, 1)
	go func() {
		resp, err := cl.Do(req)
		if err != nil {
			errc <- err
			return
		}
		respc <- resp
	}()
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KB
	pw.Write(chunk)
	var resp *icap.Response
	select {
	case resp = <-respc: // the echo has started: the transaction is in flight
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("no response head")
	}

	// SIGHUP is reserved for reload: logged, nothing else.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	hupDeadline := time.After(10 * time.Second)
	for !strings.Contains(d.log(), "SIGHUP received") {
		select {
		case <-d.exited:
			t.Fatalf("icapd exited on SIGHUP:\n%s", d.log())
		case <-hupDeadline:
			t.Fatal("SIGHUP not logged")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// icapd stops accepting while the transfer goes on.
	testenv.Poll(t, 20*time.Second, "icapd stops accepting connections after SIGTERM", func() bool {
		c, err := net.DialTimeout("tcp", d.icap, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	readDone := make(chan struct {
		n   int64
		err error
	}, 1)
	go func() {
		n, err := io.Copy(io.Discard, resp.Body)
		readDone <- struct {
			n   int64
			err error
		}{n, err}
	}()
	const chunks = 64 // 4 MB in all
	for range chunks - 1 {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatalf("icapd stopped reading the in-flight body: %v", err)
		}
	}
	pw.Close()
	r := <-readDone
	if r.err != nil || r.n != chunks*int64(len(chunk)) {
		t.Fatalf("in-flight response: %d bytes, err %v; want %d bytes", r.n, r.err, chunks*len(chunk))
	}
	if status := d.wait(t); status != 0 {
		t.Fatalf("icapd exited with %d after SIGTERM, want 0", status)
	}
	for _, want := range []string{"signal received; shutting down", "icapd stopped", "status=200"} {
		if !strings.Contains(d.log(), want) {
			t.Errorf("icapd log lacks %q", want)
		}
	}
}

// TestNoFlags runs icapd exactly as "go run ./cmd/icapd" does: default
// addresses 127.0.0.1:1344, 127.0.0.1:9090 and the proxy on
// 127.0.0.1:3128, which serves a GET at once. It is skipped when
// something else holds those ports (TestProxyEmbeddedDefaults checks the
// same on free ports).
func TestNoFlags(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1344", "127.0.0.1:9090", "127.0.0.1:3128"} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Skipf("default address %s busy (%v); the defaults are checked by internal/icapd TestParseFlags", a, err)
		}
		l.Close()
	}
	bin := buildIcapd(t)
	d := startIcapd(t, bin)
	if d.icap != "127.0.0.1:1344" || d.adm != "127.0.0.1:9090" {
		t.Fatalf("listening on %s and %s, want the defaults", d.icap, d.adm)
	}
	resp, err := http.Get("http://" + d.adm + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ir, err := (&icap.Client{}).Options(context.Background(), "icap://127.0.0.1:1344/echo")
	if err != nil || ir.StatusCode != 200 || resp.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v, healthz %d", err, resp.StatusCode)
	}
	if pa := d.proxyAddr(t); pa != "127.0.0.1:3128" {
		t.Fatalf("proxy on %s, want 127.0.0.1:3128", pa)
	}
	origin, jpg := corpusOrigin(t)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: "127.0.0.1:3128"})}}
	if _, body := testenv.Get(t, c, origin.URL+"/flowers.jpeg", nil); !bytes.Equal(body, jpg) {
		t.Fatalf("GET through the default proxy: %d bytes, want the origin's %d", len(body), len(jpg))
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	if status := d.wait(t); status != 0 {
		t.Fatalf("exit status %d after SIGINT, want 0", status)
	}
}

// TestBadFlags checks the exit status and message of a bad command line.
func TestBadFlags(t *testing.T) {
	bin := buildIcapd(t)
	out, err := exec.Command(bin, "-listen-tls", "127.0.0.1:0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "needs -cert and -key") {
		t.Fatalf("icapd -listen-tls without a certificate: %v, %q; want exit 2 naming -cert and -key", err, out)
	}
}
