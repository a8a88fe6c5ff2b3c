package systest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/dashboard"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// binaries are built once per test run into a temporary directory that
// TestMain removes.
var binaries testenv.BuildOnce

// buildBinary returns the path of cmd/<name> (icapd or spand) built for
// this run.
func buildBinary(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(binaries.Dir(t, "", "./cmd/icapd", "./cmd/spand"), name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	binaries.Remove()
	printFigures()
	os.Exit(code)
}

// proc is a child process whose stderr is kept for the test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    testenv.SyncBuffer
	exited chan struct{}
	status int // exit status once exited is closed (-1: killed by a signal)
}

// startProc starts bin with args and waits until a line of its stderr
// matches ready, whose submatches it returns.
func startProc(t testing.TB, name, bin string, ready *regexp.Regexp, args ...string) (*proc, []string) {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	p.cmd.Stdout = pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	matched := make(chan []string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.log.Write([]byte(sc.Text() + "\n"))
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case matched <- m:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		err := p.cmd.Wait()
		p.status = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.status = ee.ExitCode()
		}
		pw.Close()
		<-copied
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output (last 6000 bytes):\n%s", name, tail(p.log.String(), 6000))
		}
	})
	select {
	case m := <-matched:
		return p, m
	case <-p.exited:
		t.Fatalf("%s exited with %d before it was ready:\n%s", name, p.status, p.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready after 60 s:\n%s", name, p.log.String())
	}
	return nil, nil
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.name, sig, err)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.status
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", p.name, timeout)
		return -1
	}
}

// waitLog polls the process's output until it holds substr.
func (p *proc) waitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	testenv.Poll(t, timeout, p.name+" logs "+strconv.Quote(substr), func() bool { return strings.Contains(p.log.String(), substr) })
}

// waitLogLine polls the process's output until one line holds every
// substring.
func (p *proc) waitLogLine(t testing.TB, timeout time.Duration, substrs ...string) {
	t.Helper()
	testenv.Poll(t, timeout, fmt.Sprintf("%s logs a line with %q", p.name, substrs), func() bool {
		for _, line := range strings.Split(p.log.String(), "\n") {
			if containsAll(line, substrs) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, substrs []string) bool {
	for _, sub := range substrs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// status fields of /proc/PID/status in bytes: VmRSS (resident now) and
// VmHWM (the peak resident size).
func (p *proc) memStatus(t testing.TB) (rss, hwm int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n << 10
		case "VmHWM:":
			hwm = n << 10
		}
	}
	if rss == 0 {
		t.Fatalf("%s: no VmRSS in /proc/%d/status", p.name, p.cmd.Process.Pid)
	}
	return rss, hwm
}

// icapd is a running cmd/icapd.
type icapd struct {
	*proc
	icapAddr, adminAddr string
}

var icapdStarted = regexp.MustCompile(`msg="icapd started" icap=(\S*) icaps=\S* admin=(\S*)`)

// startICAPD runs icapd with the repository's policy.toml, admin on a
// free port, and args (which should give -listen).
func startICAPD(t testing.TB, args ...string) *icapd {
	t.Helper()
	bin := buildBinary(t, "icapd")
	all := append([]string{"-admin", "127.0.0.1:0", "-proxy", "off", "-policy", filepath.Join(testenv.ModuleRoot(t), "policy.toml")}, args...)
	p, m := startProc(t, "icapd", bin, icapdStarted, all...)
	return &icapd{proc: p, icapAddr: m[1], adminAddr: m[2]}
}

// metrics returns the samples of /metrics as "name{labels}" -> value.
func (d *icapd) metrics(t testing.TB) map[string]float64 {
	t.Helper()
	return scrape(t, "http://"+d.adminAddr+"/metrics")
}

// scrape reads a Prometheus text exposition.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, body := testenv.Get(t, http.DefaultClient, url, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	// Keyed by the series as written: name{labels}, or name alone.
	out := map[string]float64{}
	for _, m := range dashboard.ParseMetrics(string(body)) {
		key := m.Name
		if m.Labels != "" {
			key += "{" + m.Labels + "}"
		}
		out[key] = m.Value
	}
	return out
}

// sum adds the samples of metric whose labels contain every one of
// labels (e.g. `reason="bomb"`).
func sum(m map[string]float64, metric string, labels ...string) float64 {
	var s float64
	for k, v := range m {
		name, rest, _ := strings.Cut(k, "{")
		if name != metric {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if ok {
			s += v
		}
	}
	return s
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
