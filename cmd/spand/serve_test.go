package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/redisstore/redistest"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// startServe runs serve on a loopback port and returns its URL and a
// function that stops it and returns serve's error.
func startServe(t *testing.T, capture CaptureFunc, o *serveFlags) (string, func() error) {
	t.Helper()
	return startServeOn(t, testenv.Listen(t), capture, o)
}

// startServeOn is startServe on the listener ln.
func startServeOn(t *testing.T, ln net.Listener, capture CaptureFunc, o *serveFlags) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, ln, capture, o, slog.New(slog.DiscardHandler)) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-errc
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), stop
}

func query(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := runQuery(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("query %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// TestServeCaptureSnapshotQuery feeds the server from a replayed corpus
// capture (the capture's records go through the same callback a live
// capture uses), asks it with `spand query`, restarts it from its
// snapshot and checks the answers survived.
func TestServeCaptureSnapshotQuery(t *testing.T) {
	pcap := filepath.Join(testenv.Corpus(t, "pcap"), "zeek-ssh-ssh.pcap")
	o := &serveFlags{snapshot: filepath.Join(t.TempDir(), "spand.snap"), snapshotEvery: time.Hour}
	o.agg.maxAge = 200_000 * time.Hour // the capture is from 2011-2014
	o.agg.halfLife = time.Hour

	replayed := make(chan error, 1)
	capture := func(ctx context.Context, onConn func(*track.Conn)) error {
		_, err := readFile(ctx, pcap, "", track.Config{OnConn: onConn})
		replayed <- err
		<-ctx.Done()
		return nil
	}
	url, stop := startServe(t, capture, o)
	if err := <-replayed; err != nil {
		t.Fatal(err)
	}

	table := query(t, "-server", url)
	if !strings.Contains(table, "131.159.21.1") || !strings.Contains(table, "interactive") || !strings.Contains(table, "REPORTS") {
		t.Fatalf("hosts table:\n%s", table)
	}
	locals := query(t, "-server", url, "-source", "local", "-class", "interactive")
	if strings.Contains(locals, "prefix") || !strings.Contains(locals, "local ") {
		t.Fatalf("LAN clients table:\n%s", locals)
	}
	var before []spand.Prediction
	if err := json.Unmarshal([]byte(query(t, "-server", url, "-json", "-class", "interactive", "131.159.21.1")), &before); err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || before[0].Source != "host" || before[0].Reports < 1 || before[0].Throughput <= 0 {
		t.Fatalf("prediction %+v", before)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var conns, reports int
	for _, l := range strings.Split(string(metrics), "\n") {
		fmt.Sscanf(l, "spand_capture_conns_total %d", &conns)
		fmt.Sscanf(l, "spand_capture_reports_total %d", &reports)
	}
	if conns < 23 || reports < 20 || reports > conns { // 23 TCP connections, 3 without data or over 30 days
		t.Fatalf("capture counters: %d records, %d reports\n%s", conns, reports, metrics)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := os.Stat(o.snapshot); err != nil {
		t.Fatalf("no snapshot after shutdown: %v", err)
	}

	// Restart without any capture: the snapshot answers.
	url, _ = startServe(t, nil, o)
	var after []spand.Prediction
	if err := json.Unmarshal([]byte(query(t, "-server", url, "-json", "-class", "interactive", "131.159.21.1")), &after); err != nil {
		t.Fatal(err)
	}
	b, a := before[0], after[0]
	if a.Source != b.Source || a.Reports != b.Reports || a.Throughput != b.Throughput || a.RTT != b.RTT {
		t.Fatalf("after restart %+v\nwant %+v", a, b)
	}
	// Every class for one address, in a table; unknown ones say none.
	if tab := query(t, "-server", url, "131.159.21.1"); strings.Count(tab, "\n") != 5 || !strings.Contains(tab, "none") {
		t.Fatalf("per-class table:\n%s", tab)
	}
}

func TestServeFlagsErrors(t *testing.T) {
	ln := testenv.Listen(t)
	o := &serveFlags{redis: "127.0.0.1:1", snapshot: "x"}
	if err := serve(context.Background(), ln, nil, o, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Fatalf("-snapshot with -redis: %v", err)
	}
	ln = testenv.Listen(t)
	o = &serveFlags{}
	o.agg.local = "10.0.0.0/99"
	if err := serve(context.Background(), ln, nil, o, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "-local") {
		t.Fatalf("bad -local: %v", err)
	}
	var out, errb bytes.Buffer
	if err := runQuery(context.Background(), []string{"-server", "http://127.0.0.1:1", "192.0.2.1"}, &out, &errb); err == nil {
		t.Fatal("query of a server that is not there succeeded")
	}
	if err := runQuery(context.Background(), []string{"not-an-ip"}, &out, &errb); err == nil {
		t.Fatal("query of a bad address succeeded")
	}
}

// TestLiveServe is `spand -i lo -f 'tcp port P' -serve ADDR` end to end:
// bulk transfers on loopback are captured with AF_PACKET, tracked, turned
// into reports and answered over the HTTP API. Needs root.
func TestLiveServe(t *testing.T) {
	testenv.RequireRoot(t)
	// A sender: 1 MB to every connection, then close.
	src := testenv.Listen(t)
	payload := bytes.Repeat([]byte("spand"), 200_000)
	go func() {
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			go func() { c.Write(payload); c.Close() }()
		}
	}()
	port := src.Addr().(*net.TCPAddr).Port

	api := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-i", "lo", "-f", fmt.Sprintf("tcp port %d", port), "-serve", api, "-idle", "2s"}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("spand -serve: %v", err)
		}
	}()

	c := &spand.Client{BaseURL: "http://" + api, CacheTTL: -1}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Each transfer also moves the tracker's packet clock on, so the
		// previous connection's record comes out after its close linger.
		conn, err := net.Dial("tcp", src.Addr().String())
		if err == nil {
			io.Copy(io.Discard, conn)
			conn.Close()
		}
		hosts, err := c.Hosts(context.Background(), 0)
		if err == nil && len(hosts) > 0 {
			h := hosts[0]
			if h.Key != "127.0.0.1" || h.Throughput <= 0 || h.Reports < 1 {
				t.Fatalf("learned %+v", h)
			}
			resp, err := http.Get("http://" + api + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{"spand_capture_reports_total", "spand_capture_kernel_drops_total", "spand_track_connections_active"} {
				if !strings.Contains(string(m), want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			return
		}
		select {
		case err := <-done:
			t.Fatalf("spand -serve ended: %v", err)
		case <-time.After(100 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing learned from live loopback transfers in 30 s (last error %v)", err)
		}
	}
}

// TestServeRedisTwoNodes: two `spand -serve -redis` nodes on one real
// redis-server; a report POSTed to one (with the bearer token) is
// answered alike by both.
func TestServeRedisTwoNodes(t *testing.T) {
	rs := redistest.Start(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &serveFlags{redis: rs.Addr(), redisPrefix: "t:", tokenFile: tokenFile}
	url1, _ := startServe(t, nil, o)
	url2, _ := startServe(t, nil, o)
	ctx := context.Background()
	r := spand.Report{
		Local: netip.MustParseAddr("10.1.2.3"), Remote: netip.MustParseAddr("203.0.113.7"), Class: spand.ClassBulk,
		Start: time.Now().Add(-3 * time.Second), Duration: 3, Bytes: 3e6, Throughput: 1e6, RTTMin: 40, RTTMedian: 45,
	}
	if err := (&spand.Client{BaseURL: url1}).Report(ctx, []spand.Report{r}); err == nil {
		t.Fatal("report without the token accepted")
	}
	if err := (&spand.Client{BaseURL: url1, Token: "s3cret"}).Report(ctx, []spand.Report{r}); err != nil {
		t.Fatal(err)
	}
	// The node writes to Redis in the background: poll the other node.
	c2 := &spand.Client{BaseURL: url2, CacheTTL: -1}
	testenv.Poll(t, 10*time.Second, "node 2 to see the report sent to node 1", func() bool {
		p, err := c2.Predict(ctx, r.Remote, spand.ClassBulk)
		if err != nil {
			t.Fatal(err)
		}
		if p.Known() && (p.Source != "host" || p.Throughput != 1e6 || p.RTT != 45 || p.Reports != 1) {
			t.Fatalf("node 2 answers %+v", p)
		}
		return p.Known()
	})
	p1, _ := (&spand.Client{BaseURL: url1, CacheTTL: -1}).Predict(ctx, r.Remote, spand.ClassBulk)
	p2, _ := c2.Predict(ctx, r.Remote, spand.ClassBulk)
	if p1.Throughput != p2.Throughput || p1.Reports != p2.Reports || p1.Key != p2.Key {
		t.Fatalf("nodes disagree:\n %+v\n %+v", p1, p2)
	}
}

// TestServeProxyClients: the server, with its default -local, answers a
// LAN client that has no reports of its own "none" rather than from the
// proxy's /24 its other clients reported through, and with -local-prefix
// from the client's own /24; in memory and through Redis (two nodes: the
// second answers from what the first wrote).
func TestServeProxyClients(t *testing.T) {
	proxy := netip.MustParseAddr("10.0.0.1")
	now := time.Now()
	mk := func(client string, thr float64) spand.Report {
		return spand.Report{Local: netip.MustParseAddr(client), Remote: proxy, Class: spand.ClassWeb,
			Start: now.Add(-2 * time.Second), Duration: 2, Bytes: int64(2 * thr), Throughput: thr}
	}
	reports := []spand.Report{mk("10.0.1.7", 20_000), mk("10.0.1.7", 20_000), mk("10.0.2.9", 2e6)}
	rs := redistest.Start(t)
	for _, tc := range []struct {
		name     string
		redis    bool
		localPfx bool
		want     map[string]string // address: source
	}{
		{"memory", false, false, map[string]string{"10.0.1.7": "local", "10.0.0.9": "none", "10.0.1.8": "none"}},
		{"memory/-local-prefix", false, true, map[string]string{"10.0.1.7": "local", "10.0.0.9": "none", "10.0.1.8": "localprefix", "10.0.3.4": "none"}},
		{"redis/-local-prefix", true, true, map[string]string{"10.0.1.7": "local", "10.0.0.9": "none", "10.0.1.8": "localprefix", "10.0.3.4": "none"}},
		{"redis", true, false, map[string]string{"10.0.1.7": "local", "10.0.0.9": "none", "10.0.1.8": "none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &serveFlags{agg: aggFlags{localPfx: tc.localPfx}}
			if tc.redis {
				o.redis, o.redisPrefix = rs.Addr(), strings.ReplaceAll(tc.name, "/", "-")+":"
			}
			url, _ := startServe(t, nil, o)
			readURL := url
			if tc.redis {
				readURL, _ = startServe(t, nil, o)
			}
			ctx := context.Background()
			if err := (&spand.Client{BaseURL: url}).Report(ctx, reports); err != nil {
				t.Fatal(err)
			}
			c := &spand.Client{BaseURL: readURL, CacheTTL: -1}
			// Redis is written in the background: wait for A's answer.
			testenv.Poll(t, 10*time.Second, "the reports to become visible", func() bool {
				p, err := c.Predict(ctx, netip.MustParseAddr("10.0.1.7"), spand.ClassWeb)
				if err != nil {
					t.Fatal(err)
				}
				return p.Known()
			})
			for addr, want := range tc.want {
				p, err := c.Predict(ctx, netip.MustParseAddr(addr), spand.ClassWeb)
				if err != nil {
					t.Fatal(err)
				}
				if p.Source != want || want != "none" && p.Throughput != 20_000 {
					t.Errorf("Predict(%s) = %s %v B/s (key %s), want %s (A's 20000 B/s)", addr, p.Source, p.Throughput, p.Key, want)
				}
			}
		})
	}
}
