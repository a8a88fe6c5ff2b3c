// Command icapvs benchmarks icapd against c-icap's echo service with the
// same load generator (cmd/icapbench), in the same run, on loopback, and
// prints a markdown table of medians over several rounds. Within a round
// the two servers run one after the other for each cell, so that machine
// noise hits both alike.
//
// It builds icapd and icapbench, writes a c-icap configuration of its own
// (Service echo srv_echo.so, MaxKeepAliveRequests 0, access and server log
// on disk, enough threads for 256 connections) in a temporary directory,
// starts both servers on free loopback ports, and runs:
//
//	RESPMOD full echo (no preview, no 204) of 10 KB and 1 MB,
//	RESPMOD 10 KB with Preview: 1024 and Allow: 204 (the Squid-like path),
//	OPTIONS,
//
// each at -c 1, 16 and 256. Finally it opens 10,000 idle persistent
// connections to icapd (icapbench -idle) and reports icapd's RSS per
// connection.
//
// A third server, bench/icaplimit, runs in the same rounds: it does the
// least work that still answers icapbench correctly (no parsing beyond the
// offsets, no validation, no logging), so the "limit" column is the ceiling
// that this load generator on these cores allows, and "of limit" says how
// close icapd comes to it. Where 2x c-icap is above the limit, the limit is
// the figure to quote.
//
// Run it through bench/icap-vs-cicap.sh, which raises the file limit.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/metric"
)

// Result is the subset of icapbench -json output used here.
type Result struct {
	Requests  int64            `json:"requests"`
	Errors    int64            `json:"errors"`
	ReqPerSec float64          `json:"req_per_sec"`
	MBPerSec  float64          `json:"mb_per_sec"`
	P50Ms     float64          `json:"p50_ms"`
	P99Ms     float64          `json:"p99_ms"`
	Status    map[string]int64 `json:"status"`
	LastError string           `json:"last_error"`
	// ServerCPUus is the server's CPU time (user+system, all its
	// processes) per request in µs, measured here around the run: on a
	// shared machine it is steadier than req/s, which also depends on how
	// much CPU the scheduler grants each process.
	ServerCPUus float64 `json:"-"`
}

type workload struct {
	name string
	args []string
}

var workloads = []workload{
	{"RESPMOD 10 KB full echo", []string{"-method", "RESPMOD", "-size", "10240", "-preview", "-1"}},
	{"RESPMOD 1 MB full echo", []string{"-method", "RESPMOD", "-size", "1048576", "-preview", "-1"}},
	{"RESPMOD 10 KB preview 1024 + 204", []string{"-method", "RESPMOD", "-size", "10240", "-preview", "1024", "-allow204"}},
	{"OPTIONS", []string{"-method", "OPTIONS"}},
}

type server struct {
	name    string
	addr    string
	service string
	pid     int
}

func main() {
	rounds := flag.Int("rounds", 3, "rounds; the table shows medians")
	dur := flag.Duration("d", 3*time.Second, "duration of each measurement")
	conc := flag.String("c", "1,16,256", "concurrency levels")
	idle := flag.Int("idle", 10000, "idle connections for the RSS measurement (0 to skip)")
	only := flag.String("only", "", "run only workloads whose name contains this")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs, configs)")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "unmeasured run of each workload against each server before the first round (0 to skip)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("icapvs: ")

	dir, err := os.MkdirTemp("", "icapvs-")
	check(err)
	if !*keep {
		defer os.RemoveAll(dir)
	} else {
		log.Printf("working directory %s", dir)
	}
	icapd := filepath.Join(dir, "icapd")
	icapbench := filepath.Join(dir, "icapbench")
	run("go", "build", "-o", icapd, "./cmd/icapd")
	run("go", "build", "-o", icapbench, "./cmd/icapbench")
	limitBin := filepath.Join(dir, "icaplimit")
	run("go", "build", "-o", limitBin, "./bench/icaplimit")
	cicapBin, err := exec.LookPath("c-icap")
	if err != nil {
		fatalf("c-icap not found: apt-get install -y c-icap")
	}
	version := strings.TrimSpace(output(cicapBin, "-V"))

	id := startIcapd(icapd, dir)
	running = []*proc{id}
	ci := startCICAP(cicapBin, dir)
	running = append(running, ci)
	lim := startLimit(limitBin)
	procs := []*proc{id, ci, lim}
	running = procs // the same backing array: restarts are seen too
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	restarts := map[string]int{}

	var cs []int
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		check(err)
		cs = append(cs, n)
	}

	// Warm up: a fresh server grows its heap, pools and thread count
	// during its first requests, which would otherwise land in round 1 of
	// whichever cell comes first.
	if *warmup > 0 {
		for _, w := range workloads {
			if *only != "" && !strings.Contains(w.name, *only) {
				continue
			}
			for _, p := range procs {
				bench(icapbench, &p.server, w, 16, *warmup)
			}
		}
	}

	// results[workload][c][server] = one Result per round
	results := map[string]map[int]map[string][]Result{}
	for r := 0; r < *rounds; r++ {
		for _, w := range workloads {
			if *only != "" && !strings.Contains(w.name, *only) {
				continue
			}
			for _, c := range cs {
				for i := range procs {
					res, ok := bench(icapbench, &procs[i].server, w, c, *dur)
					if p := procs[i]; !ok || p.dead() {
						// The server died (c-icap 0.5.10 has been seen to
						// exit under this load): say so, start it again and
						// measure the cell again, once.
						p.stop()
						syscall.Kill(-p.pid, syscall.SIGKILL) // its children, if any
						log.Printf("round %d %s c=%d: %s exited (%v); restarting it and measuring again", r+1, w.name, c, p.name, p.exitErr)
						if p.name == "c-icap" {
							logTail(filepath.Join(dir, "c-icap-server.log"))
						}
						restarts[p.name]++
						procs[i] = p.restart()
						if res, ok = bench(icapbench, &procs[i].server, w, c, *dur); !ok {
							fatalf("%s failed again: %s", p.name, res.LastError)
						}
					}
					s := &procs[i].server
					log.Printf("round %d %-34s c=%-3d %-7s %9.0f req/s %8.1f MB/s p50 %7.3f ms p99 %7.3f ms cpu %6.1f µs/req %v errors=%d %s",
						r+1, w.name, c, s.name, res.ReqPerSec, res.MBPerSec, res.P50Ms, res.P99Ms, res.ServerCPUus, res.Status, res.Errors, res.LastError)
					if results[w.name] == nil {
						results[w.name] = map[int]map[string][]Result{}
					}
					if results[w.name][c] == nil {
						results[w.name][c] = map[string][]Result{}
					}
					results[w.name][c][s.name] = append(results[w.name][c][s.name], res)
				}
			}
		}
	}

	fmt.Printf("\nicapd vs %s, loopback, same icapbench, %d rounds of %v, medians\n\n", version, *rounds, *dur)
	fmt.Println("| workload | c | icapd req/s | c-icap req/s | ratio | limit req/s | icapd of limit | 2x c-icap of limit | icapd MB/s | c-icap MB/s | icapd p50 ms | c-icap p50 ms | icapd p99 ms | c-icap p99 ms | icapd CPU µs/req | c-icap CPU µs/req | CPU ratio | icapd status | c-icap status |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, w := range workloads {
		for _, c := range cs {
			cell := results[w.name][c]
			if cell == nil {
				continue
			}
			a, b := cell["icapd"], cell["c-icap"]
			ra, rb := median(a, func(r Result) float64 { return r.ReqPerSec }), median(b, func(r Result) float64 { return r.ReqPerSec })
			rl := median(cell["limit"], func(r Result) float64 { return r.ReqPerSec })
			ca, cb := median(a, func(r Result) float64 { return r.ServerCPUus }), median(b, func(r Result) float64 { return r.ServerCPUus })
			fmt.Printf("| %s | %d | %.0f | %.0f | %.2fx | %.0f | %.0f%% | %.0f%% | %.1f | %.1f | %.3f | %.3f | %.3f | %.3f | %.1f | %.1f | %.2fx | %s | %s |\n",
				w.name, c, ra, rb, ra/rb, rl, 100*ra/rl, 200*rb/rl,
				median(a, func(r Result) float64 { return r.MBPerSec }), median(b, func(r Result) float64 { return r.MBPerSec }),
				median(a, func(r Result) float64 { return r.P50Ms }), median(b, func(r Result) float64 { return r.P50Ms }),
				median(a, func(r Result) float64 { return r.P99Ms }), median(b, func(r Result) float64 { return r.P99Ms }),
				ca, cb, cb/ca, statuses(a), statuses(b))
		}
	}
	for name, n := range restarts {
		fmt.Printf("\n%s died and was restarted %d time(s) during the run (see the log above)\n", name, n)
	}
	if *idle > 0 {
		idleRSS(icapbench, &procs[0].server, *idle)
	}
}

// logTail logs the last lines of a server's log file.
func logTail(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Printf("%s: %v", path, err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[max(0, len(lines)-5):] {
		log.Printf("  %s: %s", filepath.Base(path), l)
	}
}

// bench runs icapbench once against s. It reports false if no request
// succeeded (icapbench then exits 1 after printing its report).
func bench(icapbench string, s *server, w workload, c int, d time.Duration) (Result, bool) {
	args := append([]string{"-json", "-addr", s.addr, "-service", s.service, "-c", strconv.Itoa(c), "-d", d.String()}, w.args...)
	cpu0 := cpuTicks(s.pid)
	cmd := exec.Command(icapbench, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	runErr := cmd.Run()
	cpu1 := cpuTicks(s.pid)
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		fatalf("icapbench %v: %v (%v): %s", args, err, runErr, out.String())
	}
	if r.Requests > 0 {
		r.ServerCPUus = float64(cpu1-cpu0) * 1e6 / clockTicks / float64(r.Requests)
	}
	return r, r.Requests > 0
}

// idleRSS opens n idle connections to s and reports its RSS growth.
func idleRSS(icapbench string, s *server, n int) {
	before := rssKB(s.pid)
	cmd := exec.Command(icapbench, "-addr", s.addr, "-service", s.service, "-idle", strconv.Itoa(n), "-d", "1h")
	stdout, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// icapbench prints one line once every connection is open and has
	// completed an OPTIONS transaction.
	line := make([]byte, 256)
	k, err := stdout.Read(line)
	if err != nil {
		fatalf("icapbench -idle: %v", err)
	}
	after := rssKB(s.pid)
	fmt.Printf("\nicapd RSS with %d idle persistent connections (each after one OPTIONS): %d KB before, %d KB after, %.1f KB per connection (icapbench: %s)\n",
		n, before, after, float64(after-before)/float64(n), strings.TrimSpace(string(line[:k])))
}

type proc struct {
	server
	cmd *exec.Cmd
	// exited is closed when the process has exited; exitErr says how.
	exited  chan struct{}
	exitErr error
	// restart starts the server again after it died, on a new port.
	restart func() *proc
}

// watch reaps the process in the background, so that a server that dies
// during the run is noticed (and restarted) instead of failing the rest.
func (p *proc) watch() *proc {
	p.exited = make(chan struct{})
	go func() { p.exitErr = p.cmd.Wait(); close(p.exited) }()
	return p
}

func (p *proc) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func startIcapd(bin, dir string) *proc {
	addr := freeAddr()
	cmd := exec.Command(bin, "-listen", addr, "-admin", freeAddr(), "-access-log", filepath.Join(dir, "icapd-access.log"), "-log-level", "warn")
	return launch("icapd", addr, cmd, func() *proc { return startIcapd(bin, dir) })
}

// launch starts cmd, a server that listens on addr, in its own process
// group with its output on stderr, waits until it accepts connections and
// watches it; restart starts it again should it die.
func launch(name, addr string, cmd *exec.Cmd, restart func() *proc) *proc {
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	check(cmd.Start())
	waitListen(addr)
	p := (&proc{server: server{name, addr, "/echo", cmd.Process.Pid}, cmd: cmd}).watch()
	p.restart = restart
	return p
}

var cicapConf = template.Must(template.New("c-icap.conf").Parse(`# generated by bench/icapvs: production-like, logs on disk
PidFile {{.Dir}}/c-icap.pid
CommandsSocket {{.Dir}}/c-icap.ctl
Timeout 300
MaxKeepAliveRequests 0
KeepAliveTimeout 600
StartServers 2
MaxServers 4
MinSpareThreads 20
MaxSpareThreads 600
ThreadsPerChild 300
MaxRequestsPerChild 0
Port {{.Addr}}
TmpDir {{.Dir}}
MaxMemObject 131072
DebugLevel 0
Pipelining on
ModulesDir /usr/lib/x86_64-linux-gnu/c_icap
ServicesDir /usr/lib/x86_64-linux-gnu/c_icap
TemplateDir /usr/share/c_icap/templates/
ServerLog {{.Dir}}/c-icap-server.log
AccessLog {{.Dir}}/c-icap-access.log
Service echo srv_echo.so
`))

func startCICAP(bin, dir string) *proc {
	addr := freeAddr()
	var conf bytes.Buffer
	check(cicapConf.Execute(&conf, map[string]string{"Dir": dir, "Addr": addr}))
	confPath := filepath.Join(dir, "c-icap.conf")
	check(os.WriteFile(confPath, conf.Bytes(), 0o644))
	cmd := exec.Command(bin, "-N", "-f", confPath)
	return launch("c-icap", addr, cmd, func() *proc { return startCICAP(bin, dir) })
}

// startLimit starts bench/icaplimit, the protocol-free ceiling.
func startLimit(bin string) *proc {
	addr := freeAddr()
	cmd := exec.Command(bin, "-listen", addr)
	return launch("limit", addr, cmd, func() *proc { return startLimit(bin) })
}

func waitListen(addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().String()
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on Linux).
const clockTicks = 100

// cpuTicks returns the user+system CPU ticks of pid and its children
// (c-icap forks its servers), including children that have exited and
// been reaped (pid's cutime and cstime).
func cpuTicks(pid int) int64 {
	var total int64
	ents, err := os.ReadDir("/proc")
	check(err)
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces):
		// state ppid ... utime(14) stime(15).
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += ut + st
		if p == pid && len(f) >= 15 {
			cut, _ := strconv.ParseInt(f[13], 10, 64)
			cst, _ := strconv.ParseInt(f[14], 10, 64)
			total += cut + cst
		}
	}
	return total
}

// rssKB returns VmRSS of pid in KB.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			check(err)
			return n
		}
	}
	fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// median returns the median of f over rs (0 for none).
func median(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return metric.Median(v)
}

// statuses summarises the status counts of the last round, e.g. "200" or
// "204 (+3 err)".
func statuses(rs []Result) string {
	if len(rs) == 0 {
		return ""
	}
	r := rs[len(rs)-1]
	var keys []string
	for k := range r.Status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := strings.Join(keys, ",")
	if r.Errors > 0 {
		s += fmt.Sprintf(" (%d err)", r.Errors)
	}
	return s
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fatalf("%s %v: %v", name, args, err)
	}
}

func output(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(os.Stderr)
	if err := cmd.Run(); err != nil {
		fatalf("%s %v: %v", name, args, err)
	}
	return out.String()
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

// running holds the servers started so far, so that a fatal error does
// not leave them behind (log.Fatal skips deferred calls).
var running []*proc

// fatalf stops the servers and exits with the message.
func fatalf(format string, args ...any) {
	for _, p := range running {
		if p != nil {
			p.stop()
		}
	}
	log.Fatalf(format, args...)
}
