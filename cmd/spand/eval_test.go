package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// TestEvalCorpus replays the corpus captures. The connection counts come
// from the corpus README (tcptrace ground truth): zeek-ssh-ssh has 23 SSH
// connections, zeek-echo-connections 500 concurrent echo sessions (none can
// be predicted: each starts before any other ends).
func TestEvalCorpus(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	tests := []struct {
		file                 string
		requests             int
		minAnswered, maxAnsw int
	}{
		{"zeek-ssh-ssh.pcap", 23, 1, 22},
		{"zeek-echo-connections.pcap.gz", 500, 0, 0},
		{"zeek-http-206_example_b.pcap", 2, 1, 1}, // the second download, 25 min later, same /24
		{"zeek-http-bro.org.pcap", 8, 1, 7},       // 13 connections, 8 carried data
	}
	for _, tt := range tests {
		var a aggFlags
		res, _, err := evalFile(context.Background(), filepath.Join(dir, tt.file), "", &a)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if res.Requests != tt.requests || res.Answered < tt.minAnswered || res.Answered > tt.maxAnsw {
			t.Errorf("%s: %d requests, %d answered; want %d and %d..%d", tt.file, res.Requests, res.Answered, tt.requests, tt.minAnswered, tt.maxAnsw)
		}
		if res.Within2x > res.Answered {
			t.Errorf("%s: %d within 2x of %d answered", tt.file, res.Within2x, res.Answered)
		}
		// With a maximum age of 1 ns nothing learned can answer.
		a.maxAge = time.Nanosecond
		if res, _, _ := evalFile(context.Background(), filepath.Join(dir, tt.file), "", &a); res.Answered != 0 {
			t.Errorf("%s: %d answered with nothing fresh to learn from", tt.file, res.Answered)
		}
	}
}

func TestEvalCommand(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	f := filepath.Join(dir, "zeek-ssh-ssh.pcap")
	var out, errb bytes.Buffer
	if err := runEval(context.Background(), []string{"-r", f}, &out, &errb); err != nil {
		t.Fatalf("eval: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "zeek-ssh-ssh.pcap") || !strings.Contains(out.String(), "within2x%") {
		t.Fatalf("table:\n%s", out.String())
	}
	out.Reset()
	if err := runEval(context.Background(), []string{f, filepath.Join(dir, "zeek-http-bro.org.pcap")}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "all 2 captures: 31 requests") {
		t.Fatalf("two captures (23 + 8 requests):\n%s", out.String())
	}
	out.Reset()
	if err := runEval(context.Background(), []string{"-json", "-f", "tcp port 22", f}, &out, &errb); err != nil {
		t.Fatalf("eval -json: %v", err)
	}
	// The filter keeps the SSH connections: a subset of the 23.
	var got evalOut
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Requests < 1 || got.Requests > 23 || got.AnsweredFraction <= 0 {
		t.Fatalf("eval -json: %+v %v\n%s", got, err, out.String())
	}
	if err := runEval(context.Background(), nil, &out, &errb); err == nil {
		t.Fatal("eval without a file succeeded")
	}
	if err := runEval(context.Background(), []string{filepath.Join(dir, "missing.pcap")}, &out, &errb); err == nil {
		t.Fatal("eval of a missing file succeeded")
	}
}

// pacedServer listens on addr and sends each connection rate*d bytes at
// rate bytes/s, then closes. It returns the port. Pacing catches up on
// what is due at each 10 ms tick, so a sender delayed by a busy machine
// still averages the rate.
func pacedServer(t *testing.T, addr string, rate int, d time.Duration) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	total := int(float64(rate) * d.Seconds())
	buf := make([]byte, total)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tick := time.NewTicker(10 * time.Millisecond) // traffic pacing, not synchronisation
				defer tick.Stop()
				start, sent := time.Now(), 0
				for sent < total {
					due := min(total, int(float64(rate)*time.Since(start).Seconds())+rate/100)
					if due > sent {
						n, err := c.Write(buf[sent:due])
						if err != nil {
							return
						}
						sent += n
					}
					if sent < total {
						<-tick.C
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestEvalLiveLoopback is the SPAND evaluation on traffic captured live:
// three "remote hosts" (127.0.0.2-4) send at 200 kB/s, 1 MB/s and 5 MB/s,
// six transfers each, one after the other per host; the capture on lo is
// tracked, every connection becomes a report and Evaluate replays them.
// Per host, every transfer after the first is predictable from the ones
// before, and its rate is steady, so nearly all answers (80 %, to allow
// for a loaded CI machine) must be within a factor of 2; the first transfer of a host may be answered (wrongly) by
// the shared /24. Needs root.
func TestEvalLiveLoopback(t *testing.T) {
	testenv.RequireRoot(t)
	hosts := []struct {
		addr string
		rate int
	}{{"127.0.0.2", 200_000}, {"127.0.0.3", 1_000_000}, {"127.0.0.4", 5_000_000}}
	const transfers = 6
	// A probe host, not evaluated, tells when the capture is running.
	probePort := pacedServer(t, "127.0.0.5", 100_000, 50*time.Millisecond)
	filter := []string{fmt.Sprintf("tcp port %d", probePort)}
	ports := make([]int, len(hosts))
	for i, h := range hosts {
		ports[i] = pacedServer(t, h.addr, h.rate, 300*time.Millisecond)
		filter = append(filter, fmt.Sprintf("tcp port %d", ports[i]))
	}
	dial := func(addr string, port int) {
		c, err := net.Dial("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}

	var mu sync.Mutex
	var reports []spand.Report
	local := spand.LocalPrefixes(netip.MustParsePrefix("127.0.0.1/32"))
	ctx, cancel := context.WithCancel(context.Background())
	o := &options{iface: "lo", filter: strings.Join(filter, " or "), periodic: -1}
	captured := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		captured <- live(ctx, o, func(c *track.Conn) {
			if r, ok := spand.ReportFromConn(c, local); ok {
				mu.Lock()
				reports = append(reports, r)
				mu.Unlock()
			}
		}, slog.New(slog.DiscardHandler))
	}()
	// The capture socket is open once a probe connection has come out as
	// a report (after the tracker's close linger): poll with a deadline.
	go func() {
		defer close(started)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			dial("127.0.0.5", probePort)
			mu.Lock()
			n := len(reports)
			mu.Unlock()
			if n > 0 {
				return
			}
		}
	}()
	<-started
	mu.Lock()
	if len(reports) == 0 {
		mu.Unlock()
		cancel()
		t.Fatalf("capture on lo saw nothing within 20 s: %v", <-captured)
	}
	mu.Unlock()

	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range transfers {
				dial(h.addr, ports[i])
			}
		}()
	}
	wg.Wait()
	cancel() // live flushes the tracker: every record comes out
	if err := <-captured; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	perHost := map[string]int{}
	var evaluated []spand.Report
	for _, r := range reports {
		perHost[r.Remote.String()]++
		if r.Remote.String() != "127.0.0.5" {
			evaluated = append(evaluated, r)
		}
	}
	for _, h := range hosts {
		if perHost[h.addr] != transfers {
			t.Fatalf("reports per host %v, want %d for each evaluated host", perHost, transfers)
		}
	}
	res := spand.Evaluate(evaluated, spand.Config{})
	var b strings.Builder
	res.WriteTable(&b, "live loopback")
	t.Logf("\n%s", b.String())
	if res.BySource["host"] < len(hosts)*(transfers-1) {
		t.Errorf("%d answers by host, want at least %d", res.BySource["host"], len(hosts)*(transfers-1))
	}
	if f := float64(res.Within2x) / float64(res.BySource["host"]); f < 0.8 {
		t.Errorf("within 2x: %d of %d answers (%d by host), want nearly all host answers", res.Within2x, res.Answered, res.BySource["host"])
	}
}
