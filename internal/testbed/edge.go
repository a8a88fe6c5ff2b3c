package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// EdgeLANIface and EdgeWANIface are the names of the proxy host's two
// interfaces in an Edge: the client-facing one (where a passive collector
// listens) and the one toward the origin.
const (
	EdgeLANIface = "lan0"
	EdgeWANIface = "wan0"
)

// EdgeClient describes one client host of an Edge.
type EdgeClient struct {
	// Name is the host's role, part of its namespace name (letters and
	// digits, at most 8).
	Name string
	// Rate, if positive, puts a tbf of this many bit/s on the switch
	// port toward the client: everything the client receives crosses it.
	// Zero leaves the port unshaped.
	Rate int64
	// Queue is the tbf latency (queue size in time); zero means
	// DefaultQueue.
	Queue time.Duration
}

// Edge is the topology of an edge proxy in front of a LAN:
//
//	origin ── wan0 [proxy] lan0 ── switch ─┬─(tbf)─ client0
//	  10.201.1.0/24        10.201.2.0/24   └─────── client1 …
//
// The proxy host has two interfaces: wan0 (10.201.1.1) toward the origin
// (10.201.1.10) and lan0 (10.201.2.1), the client-facing one, on a bridge
// in the switch namespace to which every client (10.201.2.10, .11, …) is
// attached. The proxy does not forward packets: clients reach the origin
// only through a proxy program running on the proxy host. A client with a
// Rate gets a tbf on its switch port, so the shaper sits on neither the
// sending host nor the receiving one (see the package documentation for
// why not on the sender).
//
// Every route in the Edge carries "congctl cubic", so all TCP connections
// use cubic whatever program opens them (the machine default is BBR, a
// namespace's sysctl cannot change it, and programs such as Squid cannot
// be told to set TCP_CONGESTION).
type Edge struct {
	Origin  *Host
	Proxy   *Host // Addr is the lan0 address, the one clients use
	Switch  *Host // the bridge (no address)
	Clients []*Host

	// ProxyWAN is the proxy's address on wan0, the one the origin sees.
	ProxyWAN netip.Addr

	id string
}

// NewEdge builds an Edge with the given clients, or skips the test
// without root or iproute2 (fails under CI). Everything it made is removed
// when the test ends.
func NewEdge(t testing.TB, clients ...EdgeClient) *Edge {
	t.Helper()
	prepare(t)
	e, err := buildEdge(clients)
	if e != nil {
		closeOnCleanup(t, e.Close)
	}
	if err != nil {
		t.Fatalf("testbed: edge: %v", err)
	}
	return e
}

// prepare skips (or, under CI, fails) a test that cannot build namespaces,
// and removes those left behind by dead test processes.
func prepare(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.LookPath(t, "ip", "iproute2")
	testenv.LookPath(t, "tc", "iproute2")
	if err := Sweep(); err != nil {
		t.Logf("testbed: sweeping stale namespaces: %v", err)
	}
}

// closeOnCleanup removes a network when the test ends, failing the test
// if that goes wrong.
func closeOnCleanup(t testing.TB, close func() error) {
	t.Cleanup(func() {
		if err := close(); err != nil {
			t.Errorf("testbed cleanup: %v", err)
		}
	})
}

func buildEdge(clients []EdgeClient) (*Edge, error) {
	if len(clients) == 0 || len(clients) > MaxHosts {
		return nil, fmt.Errorf("%d clients: want 1..%d", len(clients), MaxHosts)
	}
	for _, c := range clients {
		if c.Name == "" || len(c.Name) > 8 || c.Rate < 0 || c.Queue < 0 {
			return nil, fmt.Errorf("client %+v: want a name of 1-8 characters and no negative rate or queue", c)
		}
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	e := &Edge{
		id:       fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(rnd[:])),
		ProxyWAN: netip.MustParseAddr("10.201.1.1"),
	}
	host := func(role, addr string) (*Host, error) {
		h := &Host{Name: e.id + "-" + role}
		if addr != "" {
			h.Addr = netip.MustParseAddr(addr)
		}
		return h, addNS(h.Name)
	}
	var err error
	if e.Proxy, err = host("px", "10.201.2.1"); err != nil {
		return e, err
	}
	if e.Origin, err = host("or", "10.201.1.10"); err != nil {
		return e, err
	}
	if e.Switch, err = host("sw", ""); err != nil {
		return e, err
	}
	p, o, sw := e.Proxy.Name, e.Origin.Name, e.Switch.Name
	cmds := [][]string{
		{"ip", "link", "add", EdgeWANIface, "netns", p, "type", "veth", "peer", "name", "eth0", "netns", o},
		{"ip", "link", "add", EdgeLANIface, "netns", p, "type", "veth", "peer", "name", "px", "netns", sw},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "px", "master", "br0"},
		{"ip", "-n", sw, "link", "set", "px", "up"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
	}
	if err := runAll(cmds); err != nil {
		return e, err
	}
	if err := addr(p, EdgeWANIface, e.ProxyWAN, "10.201.1.0/24"); err != nil {
		return e, err
	}
	if err := addr(p, EdgeLANIface, e.Proxy.Addr, "10.201.2.0/24"); err != nil {
		return e, err
	}
	if err := addr(o, "eth0", e.Origin.Addr, "10.201.1.0/24"); err != nil {
		return e, err
	}
	for i, c := range clients {
		h, err := host("c"+c.Name, "10.201.2."+strconv.Itoa(10+i))
		if err != nil {
			return e, err
		}
		e.Clients = append(e.Clients, h)
		port := "c" + strconv.Itoa(i)
		cmds := [][]string{
			{"ip", "link", "add", "eth0", "netns", h.Name, "type", "veth", "peer", "name", port, "netns", sw},
			{"ip", "-n", sw, "link", "set", port, "master", "br0"},
			{"ip", "-n", sw, "link", "set", port, "up"},
		}
		if err := runAll(cmds); err != nil {
			return e, err
		}
		if err := addr(h.Name, "eth0", h.Addr, "10.201.2.0/24"); err != nil {
			return e, err
		}
		if c.Rate > 0 {
			q := c.Queue
			if q == 0 {
				q = DefaultQueue
			}
			// As in Testbed.tbf: a bucket of 4 ms but at least two
			// full-size frames.
			burst := max(c.Rate/8/250, 2*1514)
			if err := run("tc", "-n", sw, "qdisc", "add", "dev", port, "root", "tbf",
				"rate", strconv.FormatInt(c.Rate, 10)+"bit", "burst", strconv.FormatInt(burst, 10),
				"latency", fmt.Sprintf("%dus", q.Microseconds())); err != nil {
				return e, err
			}
		}
	}
	return e, nil
}

// addr gives dev in namespace ns the address a in subnet, brings it up and
// replaces the subnet's connected route by one that pins cubic.
func addr(ns, dev string, a netip.Addr, subnet string) error {
	return runAll([][]string{
		{"ip", "-n", ns, "addr", "add", a.String() + "/24", "dev", dev, "noprefixroute"},
		{"ip", "-n", ns, "link", "set", dev, "up"},
		{"ip", "-n", ns, "route", "add", subnet, "dev", dev, "src", a.String(), "congctl", "lock", "cubic"},
	})
}

// Close removes every namespace of the Edge. It is idempotent; NewEdge
// registers it with t.Cleanup.
func (e *Edge) Close() error {
	var errs []error
	for _, h := range append([]*Host{e.Proxy, e.Origin, e.Switch}, e.Clients...) {
		if h == nil {
			continue
		}
		if err := delNS(h.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
