// Package testbed builds a small network out of Linux network namespaces for
// tests that need real TCP over a real bottleneck: senders on the left, one
// router in the middle, receivers on the right, and a tbf (token bucket)
// shaper on the router's egress toward the receivers.
//
//	sender0 ─┐                          ┌─ receiver0
//	sender1 ─┤ brL ── router ── brR(tbf) ├─ receiver1
//	   …     ┘   10.200.1.0/24  10.200.2.0/24  …
//
// Every host is a namespace of its own, joined to the router by a veth pair;
// the router's ends hang on one bridge per side, so every flow toward the
// receivers crosses the same tbf on the right bridge. The shaper sits on the
// router and never on a sending host: on the sender's own interface, TCP
// Small Queues would hold the sending socket back and starve late or single
// flows, which makes any fairness figure meaningless. netem, fq and fq_codel
// are not available on the machines this runs on; tbf is, so the only
// queueing delay is the tbf backlog (Queue), and the base RTT is that of the
// veths (tens of microseconds).
//
// Addresses come from 10.200.0.0/16 and exist only on the veths and bridges
// inside the namespaces the test creates, so test traffic never leaves them.
// Names carry the test process's pid and a random suffix; New removes
// namespaces left behind by test processes that no longer run (a killed
// `go test`), and t.Cleanup removes everything a test made, also when it
// fails.
//
// Go code runs inside a namespace with Host.Do: it locks the goroutine to its
// OS thread, enters the namespace with setns(2), runs the function and
// returns. Sockets keep the namespace they were created in, so a listener or
// connection opened by Host.Listen or Host.Dial can be used from any
// goroutine afterwards.
//
// Everything needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2; New
// skips the test without them (and fails it under CI=true).
package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for the zero fields of a Topology.
const (
	// DefaultRate is the bottleneck rate in bits per second.
	DefaultRate = 10_000_000
	// DefaultQueue is how much queueing delay the tbf holds before it drops
	// (its "latency" parameter).
	DefaultQueue = 80 * time.Millisecond
	// MaxHosts bounds Senders and Receivers: addresses are .10 to .250 of a
	// /24.
	MaxHosts = 240
)

// namePrefix starts every namespace this package creates; Sweep relies on it.
const namePrefix = "tb-"

// Topology describes the network New builds. The zero value is one sender
// and one receiver behind a DefaultRate bottleneck with DefaultQueue.
type Topology struct {
	Senders   int           // hosts on the left; 0 means 1
	Receivers int           // hosts behind the bottleneck; 0 means 1
	Rate      int64         // bottleneck rate in bit/s; 0 means DefaultRate
	Queue     time.Duration // tbf latency (queue size in time); 0 means DefaultQueue
}

// Testbed is a built network. Its hosts stay up until the test ends.
type Testbed struct {
	Router    *Host
	Senders   []*Host // addresses 10.200.1.10, .11, …
	Receivers []*Host // addresses 10.200.2.10, .11, …

	id    string
	rate  int64
	queue time.Duration
	burst int64 // tbf bucket in bytes
}

// Host is one network namespace with one address.
type Host struct {
	Name string     // namespace name (as in `ip netns list`)
	Addr netip.Addr // the host's address (for the router, its left one)
}

// New builds the topology, or skips the test without root or iproute2 (fails
// under CI). Everything it made is removed when the test ends.
func New(t testing.TB, topo Topology) *Testbed {
	t.Helper()
	prepare(t)
	tb, err := build(topo)
	if tb != nil {
		closeOnCleanup(t, tb.Close)
	}
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return tb
}

func build(topo Topology) (*Testbed, error) {
	if topo.Senders == 0 {
		topo.Senders = 1
	}
	if topo.Receivers == 0 {
		topo.Receivers = 1
	}
	if topo.Rate == 0 {
		topo.Rate = DefaultRate
	}
	if topo.Queue == 0 {
		topo.Queue = DefaultQueue
	}
	if topo.Senders < 0 || topo.Receivers < 0 || topo.Senders > MaxHosts || topo.Receivers > MaxHosts {
		return nil, fmt.Errorf("senders %d, receivers %d: want 1..%d each", topo.Senders, topo.Receivers, MaxHosts)
	}
	if topo.Rate < 0 || topo.Queue < 0 {
		return nil, fmt.Errorf("rate %d, queue %v: must not be negative", topo.Rate, topo.Queue)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tb := &Testbed{
		id:    fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(rnd[:])),
		rate:  topo.Rate,
		queue: topo.Queue,
	}
	tb.Router = &Host{Name: tb.id + "-r", Addr: netip.AddrFrom4([4]byte{10, 200, 1, 1})}
	if err := addNS(tb.Router.Name); err != nil {
		return tb, err
	}
	r := tb.Router.Name
	cmds := [][]string{
		{"ip", "-n", r, "link", "add", "brL", "type", "bridge"},
		{"ip", "-n", r, "link", "add", "brR", "type", "bridge"},
		{"ip", "-n", r, "addr", "add", "10.200.1.1/24", "dev", "brL"},
		{"ip", "-n", r, "addr", "add", "10.200.2.1/24", "dev", "brR"},
		{"ip", "-n", r, "link", "set", "brL", "up"},
		{"ip", "-n", r, "link", "set", "brR", "up"},
		{"ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	if err := runAll(cmds); err != nil {
		return tb, err
	}
	for i := range topo.Senders {
		h, err := tb.addHost(fmt.Sprintf("s%d", i), 1, i, "brL")
		if err != nil {
			return tb, err
		}
		tb.Senders = append(tb.Senders, h)
	}
	for i := range topo.Receivers {
		h, err := tb.addHost(fmt.Sprintf("d%d", i), 2, i, "brR")
		if err != nil {
			return tb, err
		}
		tb.Receivers = append(tb.Receivers, h)
	}
	if err := tb.tbf("add", tb.rate, tb.queue); err != nil {
		return tb, err
	}
	return tb, nil
}

// addHost makes namespace <id>-<role>, a veth pair eth0 (host) / role
// (router, on bridge br), and the address 10.200.<subnet>.<10+i>/24 with a
// default route through the router.
func (tb *Testbed) addHost(role string, subnet, i int, br string) (*Host, error) {
	h := &Host{
		Name: tb.id + "-" + role,
		Addr: netip.AddrFrom4([4]byte{10, 200, byte(subnet), byte(10 + i)}),
	}
	if err := addNS(h.Name); err != nil {
		return nil, err
	}
	r := tb.Router.Name
	gw := fmt.Sprintf("10.200.%d.1", subnet)
	cmds := [][]string{
		// Created directly inside the namespaces, so names cannot collide
		// with anything in the root namespace or another test bed.
		{"ip", "link", "add", "eth0", "netns", h.Name, "type", "veth", "peer", "name", role, "netns", r},
		{"ip", "-n", r, "link", "set", role, "master", br},
		{"ip", "-n", r, "link", "set", role, "up"},
		{"ip", "-n", h.Name, "addr", "add", h.Addr.String() + "/24", "dev", "eth0"},
		{"ip", "-n", h.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", h.Name, "route", "add", "default", "via", gw},
	}
	return h, runAll(cmds)
}

// tbf adds or changes the shaper on the router's right bridge.
func (tb *Testbed) tbf(op string, rate int64, queue time.Duration) error {
	// The bucket holds 4 ms of traffic but at least two full-size frames,
	// so the rate is smooth on the scale of an RTT. It never shrinks: tbf
	// splits a GSO packet larger than its bucket when it enqueues it, but a
	// packet queued under a larger bucket and now larger than the new one
	// can never be sent, and wedges the queue for good.
	tb.burst = max(tb.burst, rate/8/250, 2*1514)
	burst := tb.burst
	lat := fmt.Sprintf("%dus", queue.Microseconds())
	return run("tc", "-n", tb.Router.Name, "qdisc", op, "dev", "brR", "root",
		"tbf", "rate", strconv.FormatInt(rate, 10)+"bit", "burst", strconv.FormatInt(burst, 10), "latency", lat)
}

// SetRate changes the bottleneck rate (bit/s) and queue on the fly; the
// connections in flight keep going. A zero queue keeps the current one.
func (tb *Testbed) SetRate(bps int64, queue time.Duration) error {
	if bps <= 0 {
		return fmt.Errorf("testbed: rate %d bit/s must be positive", bps)
	}
	if queue == 0 {
		queue = tb.queue
	}
	if err := tb.tbf("change", bps, queue); err != nil {
		return err
	}
	tb.rate, tb.queue = bps, queue
	return nil
}

// Rate returns the current bottleneck rate in bit/s.
func (tb *Testbed) Rate() int64 { return tb.rate }

// Queue returns the current bottleneck queue (tbf latency).
func (tb *Testbed) Queue() time.Duration { return tb.queue }

// Blackhole makes the router drop (on=true) or forward again (on=false)
// every packet addressed to h, while traffic from h still flows. With h a
// sender, this silences the ACK path of its connections. (tc classifiers
// such as matchall are not available here; a blackhole route is.)
func (tb *Testbed) Blackhole(h *Host, on bool) error {
	op := "del"
	if on {
		op = "add"
	}
	return run("ip", "-n", tb.Router.Name, "route", op, "blackhole", h.Addr.String()+"/32")
}

// QdiscStats are the bottleneck's counters since it was created.
type QdiscStats struct {
	Bytes   int64 // bytes sent (frames with their Ethernet header)
	Packets int64
	Drops   int64
	Backlog int64 // bytes queued now
}

// Bottleneck reads the tbf's counters.
func (tb *Testbed) Bottleneck() (QdiscStats, error) {
	out, err := output("tc", "-j", "-s", "-n", tb.Router.Name, "qdisc", "show", "dev", "brR")
	if err != nil {
		return QdiscStats{}, err
	}
	var qs []struct {
		Kind    string `json:"kind"`
		Root    bool   `json:"root"`
		Bytes   int64  `json:"bytes"`
		Packets int64  `json:"packets"`
		Drops   int64  `json:"drops"`
		Backlog int64  `json:"backlog"`
	}
	if err := json.Unmarshal(out, &qs); err != nil {
		return QdiscStats{}, fmt.Errorf("testbed: parse tc -j output %q: %w", out, err)
	}
	for _, q := range qs {
		if q.Kind == "tbf" {
			return QdiscStats{Bytes: q.Bytes, Packets: q.Packets, Drops: q.Drops, Backlog: q.Backlog}, nil
		}
	}
	return QdiscStats{}, fmt.Errorf("testbed: no tbf on the bottleneck: %s", out)
}

// Close removes every namespace of the test bed (and with them their veths
// and bridges). It is idempotent; New registers it with t.Cleanup.
func (tb *Testbed) Close() error {
	var errs []error
	for _, h := range append(append([]*Host{tb.Router}, tb.Senders...), tb.Receivers...) {
		if h == nil {
			continue
		}
		if err := delNS(h.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sweep deletes test bed namespaces whose creating process no longer runs
// (left behind by a killed test). Namespaces of live processes, including
// other test beds running in parallel, are left alone.
func Sweep() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if err := delNS(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownerPID parses the pid out of "tb-<pid>-<hex>-<role>".
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

const netnsDir = "/var/run/netns"

func addNS(name string) error {
	if err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	return run("ip", "-n", name, "link", "set", "lo", "up")
}

func delNS(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return run("ip", "netns", "del", name)
}

// Do runs fn on an OS thread that has entered h's network namespace. Sockets
// fn creates belong to the namespace for their whole life; fn must not start
// goroutines that expect to be in it.
func (h *Host) Do(fn func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, h.Name))
	if err != nil {
		return fmt.Errorf("testbed: open namespace %s: %w", h.Name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testbed: open own namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testbed: enter namespace %s: %w", h.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so the runtime retires it with the
		// goroutine instead of reusing it in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("testbed: leave namespace %s: %w", h.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen opens a listener inside h (as net.Listen; use h.Addr or an empty
// host in addr).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial connects from inside h with the zero net.Dialer.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.DialWith(ctx, &net.Dialer{}, network, addr)
}

// DialWith connects from inside h with d (whose Control can set socket
// options such as TCP_CONGESTION before the connection starts).
func (h *Host) DialWith(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Command returns a command that runs name inside h (ip netns exec).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Run runs name inside h and returns its standard output; the error carries
// its standard error.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runCmd(h.Command(ctx, name, args...))
}

func runAll(cmds [][]string) error {
	for _, c := range cmds {
		if err := run(c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

func output(name string, args ...string) ([]byte, error) {
	return runCmd(exec.Command(name, args...))
}

func runCmd(cmd *exec.Cmd) ([]byte, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("testbed: %s: %w: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
