// Command icapbench is a closed-loop ICAP load generator: -c workers, each
// on its own persistent connection (icap.Client), send the next request as
// soon as the previous response has been read, for -d or -n requests, and
// it prints req/s, MB/s, latency percentiles and status counts (or JSON
// with -json).
//
//	icapbench -addr 127.0.0.1:1344 -service /echo -method RESPMOD -size 10240 -c 16 -d 10s
//	icapbench -method RESPMOD -size 10240 -preview 1024 -allow204 -c 16
//	icapbench -method OPTIONS -c 16
//	icapbench -idle 10000 -d 1m   # hold 10,000 idle persistent connections
//
// Unlike c-icap-stretch it never sleeps between requests, so it measures
// the server's throughput. It runs on the same machine as the server, so
// by default it uses a raw client that costs as little as possible per
// transaction (raw.go: prebuilt requests, sendfile for large bodies, a
// minimal response parser, splice into /dev/null for large response
// chunks); -client uses icap.Client instead, as -tls does. It refuses non-loopback targets unless
// -allow-remote is given: a load generator must not hit a production
// server by accident.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	o := options{}
	flag.StringVar(&o.addr, "addr", "127.0.0.1:1344", "ICAP server host:port")
	flag.StringVar(&o.service, "service", "/echo", "ICAP service path")
	flag.StringVar(&o.method, "method", "RESPMOD", "REQMOD, RESPMOD or OPTIONS")
	flag.IntVar(&o.c, "c", 16, "concurrency: workers, each with its own persistent connection")
	flag.DurationVar(&o.d, "d", 10*time.Second, "duration (ignored with -n); with -idle, how long to hold the connections")
	flag.Int64Var(&o.n, "n", 0, "total requests (instead of -d)")
	flag.StringVar(&o.bodyFile, "body", "", "file whose content is the encapsulated body")
	flag.Int64Var(&o.size, "size", 10240, "body size in bytes when -body is not given (0 for no body)")
	flag.IntVar(&o.preview, "preview", -1, "preview size; -1 sends no preview")
	flag.BoolVar(&o.allow204, "allow204", false, "send Allow: 204")
	flag.BoolVar(&o.allow206, "allow206", false, "send Allow: 206")
	flag.BoolVar(&o.tls, "tls", false, "ICAPS (icaps://); uses the icap.Client")
	flag.BoolVar(&o.client, "client", false, "send with the icap.Client instead of the raw prebuilt-request client")
	flag.BoolVar(&o.insecure, "insecure", false, "with -tls, do not verify the server certificate")
	flag.BoolVar(&o.allowRemote, "allow-remote", false, "allow a non-loopback target")
	flag.BoolVar(&o.json, "json", false, "print the report as JSON")
	flag.IntVar(&o.idle, "idle", 0, "open this many idle persistent connections (each after one OPTIONS), print a line, hold them for -d or until SIGTERM")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "per read/write inactivity timeout")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of icapbench itself to this file")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments %q", flag.Args())
	}
	if err := o.validate(); err != nil {
		fatalf("%v", err)
	}
	if err := checkTarget(o.addr, o.allowRemote); err != nil {
		fatalf("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.idle > 0 {
		if err := holdIdle(ctx, o, os.Stdout); err != nil {
			fatalf("%v", err)
		}
		return
	}
	body, err := o.body()
	if err != nil {
		fatalf("%v", err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
	}
	rep, err := run(ctx, o, body)
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fatalf("%v", err)
	}
	if err := rep.write(os.Stdout, o.json); err != nil {
		fatalf("%v", err)
	}
	if rep.Requests == 0 {
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "icapbench: "+format+"\n", args...)
	os.Exit(1)
}

type options struct {
	addr, service, method string
	c                     int
	d                     time.Duration
	n                     int64
	bodyFile              string
	size                  int64
	preview               int
	allow204, allow206    bool
	tls, insecure, client bool
	allowRemote, json     bool
	idle                  int
	timeout               time.Duration
}

func (o *options) validate() error {
	switch o.method {
	case "REQMOD", "RESPMOD", "OPTIONS":
	default:
		return fmt.Errorf("-method %q: want REQMOD, RESPMOD or OPTIONS", o.method)
	}
	if o.c < 1 {
		return fmt.Errorf("-c %d: want at least 1", o.c)
	}
	if o.n < 0 || (o.n == 0 && o.d <= 0) {
		return errors.New("want -n > 0 or -d > 0")
	}
	if o.size < 0 {
		return fmt.Errorf("-size %d is negative", o.size)
	}
	if o.service == "" || o.service[0] != '/' {
		o.service = "/" + o.service
	}
	return nil
}

func (o *options) body() ([]byte, error) {
	if o.method == "OPTIONS" {
		return nil, nil
	}
	if o.bodyFile != "" {
		b, err := os.ReadFile(o.bodyFile)
		if err != nil {
			return nil, fmt.Errorf("-body: %w", err)
		}
		return b, nil
	}
	b := make([]byte, o.size)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789\n"[i%37]
	}
	return b, nil
}

func (o *options) url() string {
	scheme := "icap"
	if o.tls {
		scheme = "icaps"
	}
	return scheme + "://" + o.addr + o.service
}

func (o *options) tlsConfig() *tls.Config {
	if !o.tls {
		return nil
	}
	return &tls.Config{InsecureSkipVerify: o.insecure}
}

// checkTarget refuses a target that resolves to any non-loopback address
// unless allowRemote.
func checkTarget(addr string, allowRemote bool) error {
	if allowRemote {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("-addr %q: %w", addr, err)
		}
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("-addr %s is not a loopback address (%s): pass -allow-remote to load a remote server", addr, a)
		}
	}
	return nil
}

// discard reads r to the end and returns the byte count.
func discard(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
