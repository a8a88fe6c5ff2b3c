// Command overhead measures the CPU cost of congestion.Conn against plain
// writes on loopback TCP, in a way that holds on a noisy shared machine:
// many short interleaved A/B pairs in one process, each side's cost taken
// as the process's CPU time (getrusage: user + system, so the kernel's TCP
// work on both ends of the loopback connection counts), and the figure is
// the median of the per-pair ratios.
//
// Why not one long run of each: another process that takes the cores for
// a few seconds, a frequency change or a cold cache hit one run and not the
// other, and single-run ratios on this 2-core machine swung from 0.70 to
// 1.54. CPU time (not wall time) does not count the time the process
// waited for a core; a pair lasts a few tens of milliseconds, so both of
// its sides see the same machine; the order within a pair alternates, so
// neither side always runs on the warmer cache; and the median of many
// ratios ignores the pairs a burst of noise split.
//
// Two connections are set up once (cubic, the reader draining the other
// end in the same process) and reused by every pair: plain writes to one,
// writes through a Conn (default ConnConfig, AIMD with window validation)
// to the other. A side first writes -warmup megabytes, not measured: the
// Conn's window ages to its floor while the other side runs (RFC 3124's
// aging: halve per srtt without feedback) and must open again, and that
// restart is not the line-rate cost. Then it writes -mb megabytes in
// -write byte writes and ends when the reader has them all. The output gives the median ratio with its
// quartiles, each side's median MB/s and CPU per MB, and the load average
// before and after: a load above the number of cores means other
// processes competed, and the quartiles show how much that spread the
// pairs.
//
// Run it through bench/cm/overhead.sh. The target (issue 4) is a CPU ratio
// of at most 1.05.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeadapt/edgeadapt/congestion"
)

func main() {
	pairs := flag.Int("rounds", 201, "rounds of the three sides (plus one warm-up round)")
	mb := flag.Int("mb", 64, "megabytes per side of a round")
	write := flag.Int("write", 64<<10, "bytes per Write")
	warmup := flag.Int("warmup", 32, "megabytes per side written before the measured ones")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *pairs < 1 || *mb < 1 || *write < 1 || *warmup < 0 {
		log.Fatal("overhead: -rounds, -mb and -write must be positive, -warmup not negative")
	}
	load0 := loadavg()
	// plain: ordinary writes; lowat: ordinary writes to a socket with the
	// Conn's TCP_NOTSENT_LOWAT, which keeps the kernel's unsent backlog
	// small (more, smaller wakeups and packets: a cost of the design, not
	// of the manager's code); conn: writes through a Conn.
	var sides []*side
	for _, k := range []string{"plain", "lowat", "conn"} {
		var sd *side
		var err error
		// Goroutines started here (the Conn's poller) carry the label.
		pprof.Do(context.Background(), pprof.Labels("side", k), func(context.Context) { sd, err = newSide(k, *write) })
		if err != nil {
			log.Fatal(err)
		}
		sides = append(sides, sd)
	}
	n, w := int64(*mb)<<20, int64(*warmup)<<20
	cpu := make([][]float64, len(sides)) // CPU ns per MB, per side and round
	mbs := make([][]float64, len(sides))
	for i := range *pairs + 1 {
		costs := make([]cost, len(sides))
		// Each round runs the sides in a rotated order, so that none
		// always comes first.
		for j := range sides {
			k := (i + j) % len(sides)
			runtime.GC() // no side pays for another's garbage
			c, err := sides[k].run(w, n)
			if err != nil {
				log.Fatal(err)
			}
			costs[k] = c
		}
		if i == 0 {
			continue // warm-up: socket buffers grow, code gets paged in
		}
		for k, c := range costs {
			cpu[k] = append(cpu[k], float64(c.cpu.Nanoseconds())/float64(*mb))
			mbs[k] = append(mbs[k], float64(*mb)/c.wall.Seconds())
		}
	}
	load1 := loadavg()
	fmt.Printf("rounds=%d mb=%d warmup=%d write=%d cores=%d load_before=%s load_after=%s\n",
		*pairs, *mb, *warmup, *write, runtime.NumCPU(), load0, load1)
	fmt.Printf("%-6s %10s %14s\n", "side", "MB/s", "cpu-us/MB")
	for k, sd := range sides {
		fmt.Printf("%-6s %10.0f %14.1f\n", sd.name, quantile(mbs[k], 0.5), quantile(cpu[k], 0.5)/1e3)
	}
	for _, r := range []struct {
		a, b   int
		target string
	}{{2, 0, " target <= 1.05"}, {1, 0, ""}, {2, 1, ""}} {
		var ratios []float64
		for i := range cpu[r.a] {
			ratios = append(ratios, cpu[r.a][i]/cpu[r.b][i])
		}
		lo, hi := medianCI(ratios)
		fmt.Printf("cpu ratio %s/%s: median %.3f (95%% CI %.3f-%.3f, quartiles %.3f-%.3f; summed %.3f; throughput %.3f)%s\n",
			sides[r.a].name, sides[r.b].name, quantile(ratios, 0.5), lo, hi, quantile(ratios, 0.25), quantile(ratios, 0.75),
			sum(cpu[r.a])/sum(cpu[r.b]), quantile(mbs[r.a], 0.5)/quantile(mbs[r.b], 0.5), r.target)
	}
}

// side is one loopback connection and the writer in front of it.
type side struct {
	name string
	w    io.Writer
	buf  []byte
	done chan error // the reader got the bytes asked for
	want chan int64
}

func newSide(name string, write int) (*side, error) {
	client, server, err := loopbackPair()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &side{name: name, w: server, buf: make([]byte, write), done: make(chan error), want: make(chan int64)}
	for _, c := range []*net.TCPConn{client, server} {
		if err := setCubic(c); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	switch name {
	case "lowat":
		if err := setLowat(server, congestion.DefaultNotSentLowat); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	case "conn":
		m := congestion.NewManager(congestion.Config{NewController: func(c congestion.ControllerConfig) congestion.Controller {
			return congestion.ValidateWindow(congestion.NewAIMD(c), c.MSS)
		}})
		c, err := congestion.NewConn(m, server, congestion.ConnConfig{CongestionControl: "cubic"})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		s.w = c
	}
	go pprof.Do(context.Background(), pprof.Labels("side", name), func(context.Context) { s.read(client) })
	return s, nil
}

// read drains the client end: for every count on want, it reads that many
// bytes and reports on done.
func (s *side) read(c net.Conn) {
	buf := make([]byte, 256<<10)
	for n := range s.want {
		_, err := io.CopyBuffer(io.Discard, io.LimitReader(c, n), buf)
		s.done <- err
	}
}

type cost struct{ cpu, wall time.Duration }

// run writes warm bytes, then n bytes, and returns the cost of the n
// bytes: from the end of the warm-up until the reader has them.
func (s *side) run(warm, n int64) (c cost, err error) {
	// The label tells the sides apart in a -cpuprofile.
	pprof.Do(context.Background(), pprof.Labels("side", s.name), func(context.Context) { c, err = s.measure(warm, n) })
	return c, err
}

func (s *side) measure(warm, n int64) (cost, error) {
	if err := s.send(warm); err != nil {
		return cost{}, err
	}
	cpu0, t0 := cpuTime(), time.Now()
	if err := s.send(n); err != nil {
		return cost{}, err
	}
	return cost{cpuTime() - cpu0, time.Since(t0)}, nil
}

// send writes n bytes and waits until the reader has them.
func (s *side) send(n int64) error {
	s.want <- n
	for left := n; left > 0; {
		k, err := s.w.Write(s.buf[:min(int64(len(s.buf)), left)])
		if err != nil {
			return fmt.Errorf("%s: write: %w", s.name, err)
		}
		left -= int64(k)
	}
	if err := <-s.done; err != nil {
		return fmt.Errorf("%s: read: %w", s.name, err)
	}
	return nil
}

func loopbackPair() (client, server *net.TCPConn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	sc := <-accepted
	if sc == nil {
		return nil, nil, fmt.Errorf("accept on %v failed", ln.Addr())
	}
	return c.(*net.TCPConn), sc.(*net.TCPConn), nil
}

func setCubic(c *net.TCPConn) error {
	return control(c, func(fd int) error {
		return unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic")
	})
}

func setLowat(c *net.TCPConn, n int) error {
	return control(c, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	})
}

// control runs fn on c's descriptor.
func control(c *net.TCPConn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quantile returns the q-quantile of xs (nearest rank, interpolated).
func quantile(xs []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// medianCI returns a distribution-free 95% confidence interval of the
// median: the order statistics n/2 -+ 1.96 sqrt(n)/2 (the normal
// approximation of the binomial). The ratio meets the target only if the
// whole interval does.
func medianCI(xs []float64) (lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n == 0 {
		return 0, 0
	}
	k := int(1.96 * math.Sqrt(float64(n)) / 2)
	return s[max(n/2-k, 0)], s[min((n-1)/2+k, n-1)]
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], "/")
}
