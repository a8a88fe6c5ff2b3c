package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// centralMetric returns the value of a metric of the server at url.
func centralMetric(t *testing.T, url, name string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in\n%s", name, b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestReportToOutage: a capture node (`spand -r FILE -report-to URL`)
// whose central server is down when it starts keeps its reports queued,
// retries, and delivers every one of them, with the bearer token, once a
// real second spand server comes up on that address.
func TestReportToOutage(t *testing.T) {
	pcap := filepath.Join(testenv.Corpus(t, "pcap"), "zeek-ssh-ssh.pcap")
	// Reserve a loopback address, then free it: the central server is
	// down until the test starts it there.
	addr := testenv.FreeAddr(t)
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	activeForwarder.Store(nil)
	var out, stderr testenv.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-r", pcap, "-o", "json",
			"-report-to", "http://" + addr, "-report-token-file", tokFile,
			"-report-every", "20ms", "-report-batch", "7", "-report-wait", "30s"}, &out, &stderr)
	}()
	// The node has read the file and failed to deliver at least once.
	var fw *forwarder
	waitFor(t, func() bool {
		fw = activeForwarder.Load()
		return fw != nil && fw.rp.Stats().Failures >= 2 && fw.made.Load() > 0
	})
	made := fw.made.Load()
	if st := fw.rp.Stats(); st.Sent != 0 || st.Queued != int(made) {
		t.Fatalf("while the server is down: %+v, %d reports made", st, made)
	}

	// The central server comes up, with a token.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	o := &serveFlags{tokenFile: tokFile}
	o.agg.maxAge = 200_000 * time.Hour // the capture is from 2011-2014
	url, _ := startServeOn(t, ln, nil, o)
	if err := <-done; err != nil {
		t.Fatalf("capture node: %v\n%s", err, stderr.String())
	}
	if got := centralMetric(t, url, "spand_aggregated_reports_total"); got != int(made) {
		t.Fatalf("central server aggregated %d reports, the node made %d", got, made)
	}
	if made < 20 {
		t.Fatalf("only %d reports from 23 connections", made)
	}
	table := query(t, "-server", url)
	if !strings.Contains(table, "131.159.21.1") {
		t.Fatalf("central server does not know the capture's hosts:\n%s", table)
	}
	if !strings.Contains(stderr.String(), "reports forwarded") || !strings.Contains(stderr.String(), "sent="+strconv.Itoa(int(made))) {
		t.Errorf("log:\n%s", stderr.String())
	}
	if !strings.Contains(out.String(), `"a":`) {
		t.Errorf("no connection records on stdout:\n%s", out.String())
	}
}

// TestReportToBoundAndErrors: with the central server down for good, the
// queue holds -report-queue reports, drops and counts the rest, and the
// node says at the end how many it could not deliver; bad flags fail.
func TestReportToBoundAndErrors(t *testing.T) {
	pcap := filepath.Join(testenv.Corpus(t, "pcap"), "zeek-ssh-ssh.pcap")
	addr := testenv.FreeAddr(t)
	var out, stderr bytes.Buffer
	err := run(context.Background(), []string{"-r", pcap, "-report-to", "http://" + addr,
		"-report-queue", "5", "-report-every", "10ms", "-report-wait", "50ms"}, &out, &stderr)
	if err == nil || !strings.Contains(err.Error(), "5 reports not delivered") {
		t.Fatalf("err %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "queued=5") || !regexp.MustCompile(`dropped=(1[5-9]|2\d)`).MatchString(stderr.String()) {
		t.Fatalf("log does not count the dropped reports:\n%s", stderr.String())
	}
	for _, args := range [][]string{
		{"-report-to", "http://" + addr},      // nothing to report on
		{"-r", pcap, "-report-to", "ftp://x"}, // not HTTP
		{"-r", pcap, "-report-to", "http://" + addr, "-report-token-file", "/nonexistent"},
	} {
		if err := run(context.Background(), args, &out, &stderr); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
