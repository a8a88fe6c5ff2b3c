package icapd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// startDaemon starts a daemon on free loopback ports with its access log
// in a file; it is shut down in t.Cleanup. The daemon log is returned.
func startDaemon(t *testing.T, cfg Config, services ...Service) (*Daemon, *testenv.SyncBuffer) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:0"
	}
	if cfg.AccessLog == "" {
		cfg.AccessLog = filepath.Join(t.TempDir(), "access.log")
	}
	logBuf := new(testenv.SyncBuffer)
	d, err := New(cfg, slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})), services...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
		if t.Failed() {
			access, _ := os.ReadFile(cfg.AccessLog)
			t.Logf("daemon log:\n%s\naccess log:\n%s", logBuf.String(), access)
		}
	})
	return d, logBuf
}

// bodyReader is a request body with Len (so the client writes small
// bodies inline) and WriteTo.
type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

// newRespmod builds a RESPMOD of body for the service URL.
func newRespmod(t testing.TB, url string, body []byte, preview int, allow204, allow206 bool) *icap.Request {
	t.Helper()
	hreq, _ := http.NewRequest("GET", "http://origin.test/file", nil)
	hresp := &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {strconv.Itoa(len(body))}},
	}
	req, err := icap.NewRequest(icap.MethodRESPMOD, url, hreq, hresp)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = bodyReader{bytes.NewReader(body)}
	req.Preview = preview
	req.Allow204, req.Allow206 = allow204, allow206
	return req
}

func icapURL(d *Daemon, path string) string { return "icap://" + d.ICAPAddr() + path }

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonServices drives the default services with icap.Client and
// checks statuses, bodies, metrics and the access log.
func TestDaemonServices(t *testing.T) {
	d, _ := startDaemon(t, Config{})
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	body := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 KB

	tests := []struct {
		name       string
		req        func() *icap.Request
		wantStatus int
		wantBody   bool // the echoed body must come back
	}{
		{name: "OPTIONS echo", wantStatus: 200, req: func() *icap.Request {
			r, _ := icap.NewRequest(icap.MethodOPTIONS, icapURL(d, "/echo"), nil, nil)
			return r
		}},
		{name: "preview 1024 answered 204", wantStatus: 204, req: func() *icap.Request {
			return newRespmod(t, icapURL(d, "/echo"), body, 1024, true, false)
		}},
		{name: "no preview, Allow 204", wantStatus: 204, req: func() *icap.Request {
			return newRespmod(t, icapURL(d, "/respmod"), body, -1, true, false)
		}},
		{name: "no preview, Allow 206 only", wantStatus: 206, req: func() *icap.Request {
			return newRespmod(t, icapURL(d, "/respmod"), body, -1, false, true)
		}},
		{name: "full echo", wantStatus: 200, wantBody: true, req: func() *icap.Request {
			return newRespmod(t, icapURL(d, "/echo"), body, -1, false, false)
		}},
		{name: "RESPMOD on /reqmod", wantStatus: 405, req: func() *icap.Request {
			return newRespmod(t, icapURL(d, "/reqmod"), body, -1, false, false)
		}},
		{name: "unknown service", wantStatus: 404, req: func() *icap.Request {
			return newRespmod(t, icapURL(d, "/nope"), body, -1, false, false)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			req.Header.Set("X-Client-IP", "192.0.2.7")
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tag := resp.ISTag(); !strings.HasPrefix(tag, `"`) || len(tag) > 32 {
				t.Errorf("ISTag %q: want quoted, at most 32 bytes", tag)
			}
			if tt.wantBody && !bytes.Equal(got, body) {
				t.Errorf("echoed body: %d bytes, not the %d sent", len(got), len(body))
			}
			if tt.wantStatus == 206 && resp.UseOriginalBody != 0 {
				t.Errorf("206 use-original-body=%d, want 0", resp.UseOriginalBody)
			}
		})
	}

	// The server calls its Observer just after writing each response, so
	// the last one may still be on its way to the metrics.
	testenv.Poll(t, 10*time.Second, "all transactions observed", func() bool {
		return d.Metrics.Requests("other", "", 404) == 1 && d.Metrics.Requests(ReqmodPath, "", 405) == 1
	})
	// The client reused its connection for all of them but the last:
	// after an error answer (405) the server closes the connection, as
	// c-icap does (c-icap-client needs it, see TestCICAPClient).
	if n := d.Metrics.AcceptedConns(); n != 2 {
		t.Errorf("accepted %d connections for %d sequential transactions, want 2", n, len(tests))
	}
	_, metrics := httpGet(t, "http://"+d.AdminAddr()+"/metrics")
	for _, want := range []string{
		`icapd_requests_total{service="/echo",method="RESPMOD",status="204"} 1`,
		`icapd_requests_total{service="/echo",method="RESPMOD",status="200"} 1`,
		`icapd_requests_total{service="/respmod",method="RESPMOD",status="206"} 1`,
		`icapd_requests_total{service="/reqmod",method="RESPMOD",status="405"} 1`,
		`icapd_requests_total{service="other",method="RESPMOD",status="404"} 1`,
		`icapd_response_204_ratio{service="/echo"} 0.5`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q\n%s", want, metrics)
		}
	}
	if code, body := httpGet(t, "http://"+d.AdminAddr()+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}

	// One access log line per transaction, with the client IP.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl.CloseIdleConnections()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.cfg.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("access log has %d lines, want %d:\n%s", len(lines), len(tests), b)
	}
	for _, want := range []string{"method=RESPMOD", "service=/echo", "status=204", "bytes_in=", "bytes_out=", "duration=", "client_ip=192.0.2.7"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("access log line %q lacks %q", lines[1], want)
		}
	}
}

// TestDaemonRefusesClientsOutsideAllowList allows only 192.0.2.0/24: the
// loopback client is refused, counted and logged.
func TestDaemonRefusesClientsOutsideAllowList(t *testing.T) {
	allow, _ := ParseAllow("192.0.2.0/24")
	d, logBuf := startDaemon(t, Config{Allow: allow, AllowSet: true})
	cl := &icap.Client{Timeout: 5 * time.Second}
	_, err := cl.Options(context.Background(), icapURL(d, "/echo"))
	if err == nil {
		t.Fatal("OPTIONS from 127.0.0.1 succeeded; want the connection refused")
	}
	if n := d.Metrics.RefusedConns(); n != 1 {
		t.Errorf("refused connections = %d, want 1", n)
	}
	if !strings.Contains(logBuf.String(), "refused ICAP client") {
		t.Errorf("refusal not logged: %s", logBuf.String())
	}
	if d.Metrics.AcceptedConns() != 0 {
		t.Errorf("a refused connection reached the ICAP server")
	}
}

func TestWarnExposed(t *testing.T) {
	tests := []struct {
		addr     string
		allowSet bool
		warn     bool
	}{
		{"127.0.0.1:1344", false, false},
		{"0.0.0.0:1344", false, true},
		{":1344", false, true},
		{"0.0.0.0:1344", true, false},
	}
	for _, tt := range tests {
		var buf testenv.SyncBuffer
		d := &Daemon{cfg: Config{AllowSet: tt.allowSet}, log: slog.New(slog.NewTextHandler(&buf, nil))}
		d.warnExposed("-listen", tt.addr)
		if got := strings.Contains(buf.String(), "without -allow"); got != tt.warn {
			t.Errorf("addr %s allowSet %v: warned %v, want %v (%s)", tt.addr, tt.allowSet, got, tt.warn, buf.String())
		}
	}
}

// TestDaemonReplaceService swaps /respmod for a handler that modifies the
// headers while serving, as the adaptation pipeline will.
func TestDaemonReplaceService(t *testing.T) {
	d, _ := startDaemon(t, Config{})
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	body := []byte("hello, world")
	oldTag := d.Mux.ISTag(RespmodPath)

	opts := serviceOptions("respmod-v2", icap.MethodRESPMOD)
	opts.Version = "v2"
	d.Handle(Service{Path: RespmodPath, Options: opts, Handler: icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
		resp := r.Response
		resp.Header.Set("X-Adapted", "yes")
		w.WriteHeader(icap.StatusOK, resp, true)
		io.Copy(w, r.Body)
	})})
	if d.Mux.ISTag(RespmodPath) == oldTag {
		t.Errorf("ISTag unchanged (%s) after the service changed", oldTag)
	}
	resp, err := cl.Do(newRespmod(t, icapURL(d, RespmodPath), body, -1, true, false))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Response == nil || resp.Response.Header.Get("X-Adapted") != "yes" || !bytes.Equal(got, body) {
		t.Fatalf("status %d, adapted header %v, body %q", resp.StatusCode, resp.Response, got)
	}
}

// TestDaemonShutdownFinishesInFlight starts a RESPMOD whose body trickles
// in, shuts the daemon down in the middle, and checks that the
// transaction completes while new connections are refused and /healthz
// reports the drain.
func TestDaemonShutdownFinishesInFlight(t *testing.T) {
	d, _ := startDaemon(t, Config{})
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()

	pr, pw := io.Pipe()
	req := newRespmod(t, icapURL(d, EchoPath), nil, -1, false, false)
	req.Response.Header.Del("Content-Length")
	req.Body = pr
	type result struct {
		body []byte
		err  error
	}
	started := make(chan *icap.Response, 1)
	done := make(chan result, 1)
	go func() {
		resp, err := cl.Do(req)
		if err != nil {
			close(started)
			return
		}
		started <- resp
		b, err := io.ReadAll(resp.Body)
		done <- result{b, err}
	}()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	pw.Write(chunk)
	// The echo service answers 200 before it has read the whole body:
	// once the response head is here, the transaction is in flight.
	resp := <-started
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("response head: %+v", resp)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- d.Shutdown(ctx)
	}()
	// Draining: health says so, and new connections are refused.
	testenv.Poll(t, 10*time.Second, "/healthz to report the drain", func() bool {
		code, _ := httpGet(t, "http://"+d.AdminAddr()+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	testenv.Poll(t, 10*time.Second, "the ICAP listener to refuse connections during shutdown", func() bool {
		c, err := net.DialTimeout("tcp", d.ICAPAddr(), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a transaction was in flight", err)
	default:
	}
	// Finish the body: the response completes and Shutdown returns.
	for range 15 {
		pw.Write(chunk)
	}
	pw.Close()
	r := <-done
	if r.err != nil || len(r.body) != 16*len(chunk) {
		t.Fatalf("in-flight transaction: %d bytes, err %v; want %d bytes", len(r.body), r.err, 16*len(chunk))
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestDaemonTLS serves ICAPS with a generated certificate.
func TestDaemonTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	d, _ := startDaemon(t, Config{Listen: "off", ListenTLS: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile})
	if d.ICAPAddr() != "" {
		t.Errorf("plain listener %q with -listen off", d.ICAPAddr())
	}
	cl := &icap.Client{TLSConfig: &tls.Config{RootCAs: pool}}
	defer cl.CloseIdleConnections()
	body := bytes.Repeat([]byte("s"), 100<<10)
	resp, err := cl.Do(newRespmod(t, "icaps://"+d.TLSAddr()+EchoPath, body, -1, false, false))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("ICAPS echo: status %d, %d bytes", resp.StatusCode, len(got))
	}
}

func TestDaemonBadCertificate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	d, err := New(Config{Listen: "off", Admin: "off", AccessLog: "off", ListenTLS: "127.0.0.1:0", CertFile: bad, KeyFile: bad}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Start with a bad certificate: %v", err)
	}
}

// writeCert writes icaptest's self-signed certificate for 127.0.0.1 and
// its key as PEM files, and returns a pool trusting it.
func writeCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, pool := icaptest.SelfSignedCert()
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile, pool
}
