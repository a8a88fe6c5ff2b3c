package main

import (
	"bytes"
	"context"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

var proxyRE = regexp.MustCompile(`msg="proxy listening" addr=(\S+)`)

// proxyAddr waits for the daemon's "proxy listening" line and returns
// the address.
func (d *daemon) proxyAddr(t *testing.T) string {
	t.Helper()
	d.waitLog(t, `msg="proxy listening"`, "the proxy did not start")
	return proxyRE.FindStringSubmatch(d.log())[1]
}

// corpusOrigin serves the corpus's flowers JPEG at /flowers.jpeg.
func corpusOrigin(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	jpg, err := os.ReadFile(filepath.Join(testenv.Corpus(t, "images"), "sharp__flowers.jpeg"))
	if err != nil {
		t.Fatal(err)
	}
	return proxytest.Origin(t, map[string]proxytest.Object{"/flowers.jpeg": {Type: "image/jpeg", Body: jpg}}), jpg
}

// TestProxyEmbeddedDefaults runs the binary with nothing but free
// addresses for its three listeners: ICAP, the admin server and the
// proxy, with the in-process store and the repository's policy. A GET
// through the proxy is the origin's image; with Save-Data: on it is a
// smaller JPEG; the proxy's transfers are reported to the store (the
// admin server's /metrics); and -store-snapshot keeps them across a
// restart.
func TestProxyEmbeddedDefaults(t *testing.T) {
	testenv.LookPath(t, "go", "golang")
	bin := buildIcapd(t)
	t.Chdir(testenv.ModuleRoot(t)) // ./policy.toml, as "go run ./cmd/icapd" finds it
	snap := filepath.Join(t.TempDir(), "store.json")
	d := startIcapd(t, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-proxy", "127.0.0.1:0", "-access-log", "off", "-store-snapshot", snap)
	for _, want := range []string{`msg="policy loaded" file=policy.toml`, "store=in-process", "congestion_manager=true"} {
		d.waitLog(t, want, "icapd log lacks "+want)
	}
	pu := &url.URL{Scheme: "http", Host: d.proxyAddr(t)}
	ir, err := (&icap.Client{}).Options(context.Background(), "icap://"+d.icap+"/respmod")
	if err != nil || ir.StatusCode != 200 {
		t.Fatalf("ICAP OPTIONS /respmod: %v %v", ir, err)
	}
	origin, jpg := corpusOrigin(t)
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	c := &http.Client{Transport: tr}
	_, body := testenv.Get(t, c, origin.URL+"/flowers.jpeg", nil)
	if !bytes.Equal(body, jpg) {
		t.Fatalf("through the proxy: %d bytes, want the origin's %d", len(body), len(jpg))
	}
	resp, body := testenv.Get(t, c, origin.URL+"/flowers.jpeg", http.Header{"Save-Data": {"on"}, "Accept": {"image/jpeg"}})
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil || len(body) >= len(jpg) || resp.Header.Get("X-Adapted") == "" {
		t.Fatalf("Save-Data: on: %d bytes (X-Adapted %q, decode error %v), want a smaller JPEG than %d", len(body), resp.Header.Get("X-Adapted"), err, len(jpg))
	}
	tr.CloseIdleConnections() // the connection's final report

	metric := func(name string) string {
		_, b := testenv.Get(t, http.DefaultClient, "http://"+d.adm+"/metrics", nil)
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(string(b))
		if m == nil {
			return ""
		}
		return m[1]
	}
	testenv.Poll(t, 10*time.Second, "a performance report of the proxy's client connection", func() bool {
		return metric(`icapd_proxy_reports_total{result="ok"}`) != "0"
	})
	if got := metric("spand_aggregated_reports_total"); got == "0" || got == "" {
		t.Errorf("spand_aggregated_reports_total %q: the reports did not reach the in-process store", got)
	}
	if got := metric("icapd_proxy_ungated_connections_total"); got != "0" {
		t.Errorf("icapd_proxy_ungated_connections_total %q, want 0: every connection under the congestion manager", got)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if status := d.wait(t); status != 0 {
		t.Fatalf("exit status %d after SIGTERM", status)
	}
	b, err := os.ReadFile(snap)
	if err != nil || !strings.Contains(string(b), "local|127.0.0.1/32|web") {
		t.Fatalf("snapshot %s after shutdown: %v; want the client's key local|127.0.0.1/32|web in:\n%.500s", snap, err, b)
	}
	// A restart restores it.
	d = startIcapd(t, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-proxy", "off", "-access-log", "off", "-store-snapshot", snap)
	if got := metric(`spand_keys{table="local"}`); got != "1" {
		t.Errorf(`after a restart spand_keys{table="local"} = %q, want 1 (the snapshot restored)`, got)
	}
}

// TestProxyFlagOff: -proxy "" and -proxy off start no proxy.
func TestProxyFlagOff(t *testing.T) {
	bin := buildIcapd(t)
	for _, v := range []string{"", "off"} {
		d := startIcapd(t, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-access-log", "off", "-proxy", v)
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.wait(t)
		if strings.Contains(d.log(), "proxy listening") {
			t.Errorf("-proxy %q started the proxy:\n%s", v, d.log())
		}
	}
}

// TestProxyCONNECTThroughBinary: a TLS origin through the binary's proxy
// (its client connection under the congestion manager, hijacked by
// goproxy for the tunnel) arrives intact, and the tunnel's transfer is
// reported too.
func TestProxyCONNECTThroughBinary(t *testing.T) {
	bin := buildIcapd(t)
	d := startIcapd(t, bin, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-proxy", "127.0.0.1:0", "-access-log", "off")
	payload := bytes.Repeat([]byte("edgeadapt tunnel payload\n"), 1<<14) // 400 KiB
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg") // adapted if it were seen
		w.Write(payload)
	}))
	defer origin.Close()
	tr := origin.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: d.proxyAddr(t)})
	resp, err := (&http.Client{Transport: tr}).Get(origin.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.TLS == nil || !bytes.Equal(body, payload) {
		t.Fatalf("tunnelled GET: %d bytes, TLS %v, err %v; want the %d bytes of the origin", len(body), resp.TLS != nil, err, len(payload))
	}
}
