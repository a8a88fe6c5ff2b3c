package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// TestLiveCommand runs `spand -i lo -f 'tcp port P' -o json -report-to
// URL` while a connection to a loopback listener sends 1 MB, and checks
// the counters published for /metrics, the connection record written at
// the end, and the report forwarded to a second spand server.
func TestLiveCommand(t *testing.T) {
	testenv.RequireRoot(t)
	ln := testenv.Listen(t)
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, stderr testenv.SyncBuffer
	done := make(chan error, 1)
	central, _ := startServe(t, nil, &serveFlags{})
	go func() {
		done <- run(ctx, []string{"-i", "lo", "-f", fmt.Sprintf("tcp port %d", port), "-o", "json",
			"-report-to", central, "-report-every", "50ms"}, &out, &stderr)
	}()
	// Wait for the capture to start before connecting.
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "capturing") })
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		received <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 1<<20))
	c.Close()
	if n := <-received; n != 1<<20 {
		t.Fatalf("received %d", n)
	}
	var metrics bytes.Buffer
	waitFor(t, func() bool {
		metrics.Reset()
		writeCaptureMetrics(&metrics)
		return strings.Contains(metrics.String(), "spand_capture_packets_tcp_total") &&
			!strings.Contains(metrics.String(), "spand_capture_packets_tcp_total 0\n")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"b":"127.0.0.1:%d"`, port)
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), `"data_bytes_a2b":1048576`) {
		t.Errorf("output lacks the connection (%s, 1 MB):\n%s\nstderr:\n%s", want, out.String(), stderr.String())
	}
	if n := centralMetric(t, central, "spand_aggregated_reports_total"); n != 1 {
		t.Errorf("the central server got %d reports, want the transfer's 1\n%s", n, stderr.String())
	}
	for _, m := range []string{"spand_capture_kernel_drops_total", "spand_track_connections_total", "spand_track_evicted_total"} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("metrics lack %s:\n%s", m, metrics.String())
		}
	}
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testenv.Poll(t, 20*time.Second, "condition", cond)
}
