package icapd

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// stampRespmod is the RESPMOD service the Squid test plugs into the
// daemon in place of the pass-through, the way the adaptation pipeline
// will. The query of the HTTP URL picks what it does:
//
//	(none)     pass-through: 204 in the preview
//	?mode=206  adds X-Stamped to the headers, keeps the body: 206
//	?mode=full adds X-Stamped and streams the whole body back: 200
func stampRespmod(w icap.ResponseWriter, r *icap.Request) {
	mode := ""
	if r.Request != nil && r.Request.URL != nil {
		mode = r.Request.URL.Query().Get("mode")
	}
	if mode == "" || r.Response == nil {
		icap.NoModification(w, r)
		return
	}
	r.Response.Header.Set("X-Stamped", "icapd")
	if mode == "206" && r.Can206() {
		// Answered without looking at the body: icap reads the rest of
		// the preview first, which Squid requires for a 206.
		w.WriteHeader(icap.StatusPartialContent, r.Response, true)
		w.UseOriginalBody(0)
		return
	}
	w.WriteHeader(icap.StatusOK, r.Response, r.HasBody())
	if r.HasBody() {
		io.Copy(w, r.Body)
	}
}

// TestSquid runs a real Squid 5 against the daemon (reqmod_precache on
// /reqmod, respmod_precache on /respmod) and fetches origin bodies of 0 B
// to 100 MB through it: they arrive byte-identical, icap_log shows the
// expected outcome for each, Squid reused its ICAP connections, and the
// process (daemon, origin and HTTP client together) stayed under 100 MB
// of resident memory while 100 MB streamed through icapd.
func TestSquid(t *testing.T) {
	origin := squidtest.NewOrigin(t)
	d, _ := startDaemon(t, Config{})
	opts := serviceOptions("respmod", icap.MethodRESPMOD)
	opts.Version = "squid-test"
	d.Handle(Service{Path: RespmodPath, Handler: icap.HandlerFunc(stampRespmod), Options: opts})
	sq := squidtest.Start(t, squidtest.Config{Services: []squidtest.Service{
		{Name: "edge_req", Point: squidtest.ReqmodPrecache, URL: "icap://" + d.ICAPAddr() + ReqmodPath},
		{Name: "edge_resp", Point: squidtest.RespmodPrecache, URL: "icap://" + d.ICAPAddr() + RespmodPath},
	}})
	client := sq.Client()

	tests := []struct {
		name    string
		size    int64
		mode    string
		outcome string // Squid's icap_log outcome for the RESPMOD (206 is ICAP_PART_ECHO)
		status  int    // ICAP status of the RESPMOD
		rss     bool   // check the peak RSS during this fetch
	}{
		{name: "0 B", size: 0, outcome: "ICAP_ECHO", status: 204},
		{name: "10 KB", size: 10 << 10, outcome: "ICAP_ECHO", status: 204},
		{name: "1 MB", size: 1 << 20, outcome: "ICAP_ECHO", status: 204},
		{name: "100 MB", size: 100 << 20, outcome: "ICAP_ECHO", status: 204},
		{name: "10 KB header-only 206", size: 10 << 10, mode: "206", outcome: "ICAP_PART_ECHO", status: 206},
		{name: "1 MB header-only 206", size: 1 << 20, mode: "206", outcome: "ICAP_PART_ECHO", status: 206},
		{name: "0 B modified", size: 0, mode: "full", outcome: "ICAP_MOD", status: 200},
		{name: "10 KB modified", size: 10 << 10, mode: "full", outcome: "ICAP_MOD", status: 200},
		{name: "1 MB modified", size: 1 << 20, mode: "full", outcome: "ICAP_MOD", status: 200},
		{name: "100 MB modified, streamed through icapd", size: 100 << 20, mode: "full", outcome: "ICAP_MOD", status: 200, rss: true},
	}
	logged := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := origin.URL(tt.size)
			if tt.mode != "" {
				url += "?mode=" + tt.mode
			}
			if tt.rss {
				resetPeakRSS(t)
			}
			resp, err := client.Get(url)
			if err != nil {
				t.Fatalf("GET %s through squid: %v", url, err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: status %d, %d bytes, err %v", url, resp.StatusCode, n, err)
			}
			if n != tt.size || hex.EncodeToString(h.Sum(nil)) != squidtest.Digest(tt.size) {
				t.Fatalf("body: %d bytes, sha256 %x; want %d bytes, sha256 %s", n, h.Sum(nil), tt.size, squidtest.Digest(tt.size))
			}
			if stamped := resp.Header.Get("X-Stamped") == "icapd"; stamped != (tt.mode != "") {
				t.Errorf("X-Stamped header %q; want it only on modified responses", resp.Header.Get("X-Stamped"))
			}
			if tt.rss {
				if peak := peakRSS(t); peak > 100<<20 && !raceEnabled {
					t.Errorf("peak RSS %d MB during the 100 MB transfer, want < 100 MB", peak>>20)
				} else {
					t.Logf("peak RSS of the test process (icapd, origin, client) during the 100 MB transfer: %.1f MB", float64(peak)/(1<<20))
				}
			}

			// Squid logs each ICAP transaction when it ends: one REQMOD and
			// one RESPMOD per fetch.
			// OPTIONS fetches are logged too; leave them out.
			adaptations := func(all []squidtest.ICAPLogEntry) []squidtest.ICAPLogEntry {
				var out []squidtest.ICAPLogEntry
				for _, e := range all {
					if e.Method != "OPTIONS" {
						out = append(out, e)
					}
				}
				return out
			}
			all := sq.WaitICAPLog(t, 30*time.Second, func(e []squidtest.ICAPLogEntry) bool { return len(adaptations(e)) >= logged+2 })
			entries := adaptations(all)
			if len(entries) != logged+2 {
				t.Fatalf("icap_log has %d REQMOD/RESPMOD entries, want %d", len(entries), logged+2)
			}
			var req, rsp *squidtest.ICAPLogEntry
			for i := range entries[logged:] {
				switch e := &entries[logged+i]; e.Method {
				case "REQMOD":
					req = e
				case "RESPMOD":
					rsp = e
				}
			}
			logged += 2
			if req == nil || rsp == nil {
				t.Fatalf("icap_log entries %v: want one REQMOD and one RESPMOD", entries[logged-2:])
			}
			if req.Service != "edge_req" || req.Outcome != "ICAP_ECHO" || req.Status != 204 {
				t.Errorf("REQMOD: %s", req.Line)
			}
			if rsp.Service != "edge_resp" || rsp.Outcome != tt.outcome || rsp.Status != tt.status {
				t.Errorf("RESPMOD: %s; want outcome %s, status %d", rsp.Line, tt.outcome, tt.status)
			}
			if rsp.ClientIP != "127.0.0.1" {
				t.Errorf("RESPMOD sent X-Client-IP %q, want 127.0.0.1 (adaptation_send_client_ip on)", rsp.ClientIP)
			}
			if tt.status == 200 && rsp.Received < tt.size {
				t.Errorf("a modified %d-byte body came back from icapd as %d bytes", tt.size, rsp.Received)
			}
		})
	}

	// Squid kept its ICAP connections: far fewer accepted connections than
	// transactions (OPTIONS included).
	transactions := d.Metrics.Requests(ReqmodPath, "", 204) + d.Metrics.Requests(RespmodPath, "", 204) +
		d.Metrics.Requests(RespmodPath, "", 206) + d.Metrics.Requests(RespmodPath, "", 200)
	accepted := d.Metrics.AcceptedConns()
	t.Logf("%d ICAP transactions over %d connections", transactions, accepted)
	if transactions < int64(2*len(tests)) || accepted*4 > transactions {
		t.Errorf("%d ICAP connections for %d transactions: want at most a quarter as many connections", accepted, transactions)
	}
	// The access log names the HTTP client Squid served.
	testenv.Poll(t, 10*time.Second, "the access log to name X-Client-IP", func() bool {
		b, _ := os.ReadFile(d.cfg.AccessLog)
		return strings.Contains(string(b), "client_ip=127.0.0.1")
	})
}

// resetPeakRSS resets the process's VmHWM (Linux clear_refs 5).
func resetPeakRSS(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
}

// peakRSS returns the process's VmHWM in bytes.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(fmt.Errorf("parse VmHWM %q: %w", v, err))
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// readmeBlocks returns the ```squid blocks of README.md's "Squid
// configuration" section.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Squid configuration\n")
	if !ok {
		t.Fatal("README.md has no Squid configuration section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var blocks []string
	for {
		_, rest, ok := strings.Cut(sec, "```squid\n")
		if !ok {
			return blocks
		}
		block, after, _ := strings.Cut(rest, "```")
		blocks = append(blocks, block)
		sec = after
	}
}

// TestReadmeSquidConfig runs Squid with the README's squid.conf snippet as
// written (only icapd's port differs: the test's daemon listens on a free
// one) and fetches through it; the README's icap_log format is the one
// the harness parses.
func TestReadmeSquidConfig(t *testing.T) {
	blocks := readmeBlocks(t)
	if len(blocks) != 2 {
		t.Fatalf("README Squid configuration has %d squid blocks, want 2 (services, icap_log)", len(blocks))
	}
	if !strings.Contains(blocks[1], squidtest.ICAPLogFormat) {
		t.Errorf("README logformat differs from squidtest.ICAPLogFormat %q", squidtest.ICAPLogFormat)
	}
	origin := squidtest.NewOrigin(t)
	d, _ := startDaemon(t, Config{})
	conf := strings.ReplaceAll(blocks[0], "127.0.0.1:1344", d.ICAPAddr())
	sq := squidtest.Start(t, squidtest.Config{ICAPConf: conf})
	for _, n := range []int64{0, 10 << 10, 1 << 20} {
		resp, err := sq.Client().Get(origin.URL(n))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		got, _ := io.Copy(h, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || got != n || hex.EncodeToString(h.Sum(nil)) != squidtest.Digest(n) {
			t.Fatalf("%d bytes through the README configuration: status %d, %d bytes", n, resp.StatusCode, got)
		}
	}
	sq.WaitICAPLog(t, 30*time.Second, func(e []squidtest.ICAPLogEntry) bool {
		var n int
		for _, x := range e {
			if x.Outcome == "ICAP_ECHO" && x.Status == 204 && (x.Service == "edge_req" || x.Service == "edge_resp") {
				n++
			}
		}
		return n == 6
	})
}
