package icapd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// cicapResult is what c-icap-client printed and saved.
type cicapResult struct {
	stdout string
	status string // the ICAP status line, e.g. "ICAP/1.0 200 OK"
	out    []byte // the -o file, nil if c-icap-client wrote none
}

// cicapClient runs c-icap-client against the daemon with args (and -v,
// -i, -p, -o added). It fails the test if the client does not finish
// within 20 s: a hang is an interop bug.
func cicapClient(t *testing.T, bin string, d *Daemon, args ...string) cicapResult {
	t.Helper()
	host, port, _ := net.SplitHostPort(d.ICAPAddr())
	outFile := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-i", host, "-p", port, "-v", "-o", outFile}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	stdout, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("c-icap-client %v hung: %s", full, stdout)
	}
	if err != nil {
		t.Fatalf("c-icap-client %v: %v: %s", full, err, stdout)
	}
	r := cicapResult{stdout: string(stdout)}
	if i := strings.Index(r.stdout, "ICAP HEADERS:"); i >= 0 {
		rest := strings.TrimLeft(r.stdout[i+len("ICAP HEADERS:"):], "\r\n\t ")
		r.status, _, _ = strings.Cut(rest, "\n")
		r.status = strings.TrimSpace(r.status)
	}
	if b, err := os.ReadFile(outFile); err == nil {
		r.out = b
	}
	return r
}

// TestCICAPClient runs the real c-icap-client (Debian c-icap) against the
// daemon: OPTIONS, REQMOD and RESPMOD, with and without preview, with
// -no204 and -206, and checks its output: status, headers, and the body
// it saved, byte for byte.
func TestCICAPClient(t *testing.T) {
	bin := testenv.LookPath(t, "c-icap-client", "c-icap")
	d, _ := startDaemon(t, Config{})
	// A service that changes the headers only: 206 where allowed.
	headerOnly := serviceOptions("stamp", icap.MethodRESPMOD)
	d.Handle(Service{Path: "/stamp", Options: headerOnly, Handler: icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
		r.Response.Header.Set("X-Stamped", "icapd")
		if r.Can206() {
			w.WriteHeader(icap.StatusPartialContent, r.Response, true)
			w.UseOriginalBody(0)
			return
		}
		w.WriteHeader(icap.StatusOK, r.Response, true)
		io.Copy(w, r.Body)
	})})

	dir := t.TempDir()
	files := map[string][]byte{}
	for name, size := range map[string]int{"empty": 0, "small": 100, "10k": 10 << 10, "1m": 1 << 20} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*7 + i/251)
		}
		files[name] = b
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	f := func(name string) string { return filepath.Join(dir, name) }

	tests := []struct {
		name       string
		args       []string
		wantStatus string   // prefix of the ICAP status line
		wantText   []string // substrings of c-icap-client's output
		wantBody   string   // name of the file the saved body must equal; "" for none
	}{
		{name: "OPTIONS echo", args: []string{"-s", "echo"}, wantStatus: "ICAP/1.0 200",
			wantText: []string{"Allow 204: Yes", "Allow 206: Yes", "Preview: 1024", "Methods: REQMOD, RESPMOD", "Allow: 204, 206, trailers", `ISTag: "`, "Service-ID: echo", "Transfer-Preview: *", "X-Include: X-Client-IP"}},
		{name: "OPTIONS reqmod", args: []string{"-s", "reqmod"}, wantStatus: "ICAP/1.0 200", wantText: []string{"Methods: REQMOD\n"}},
		{name: "RESPMOD preview, 204", args: []string{"-s", "echo", "-f", f("10k")}, wantStatus: "ICAP/1.0 204",
			wantText: []string{"No modification needed"}},
		{name: "RESPMOD -w 4096 -no204: 204 inside the preview", args: []string{"-s", "respmod", "-f", f("1m"), "-w", "4096", "-no204"}, wantStatus: "ICAP/1.0 204"},
		{name: "RESPMOD small body fits the preview (ieof)", args: []string{"-s", "respmod", "-f", f("small"), "-no204"}, wantStatus: "ICAP/1.0 204"},
		{name: "RESPMOD -nopreview -no204: full echo", args: []string{"-s", "echo", "-f", f("10k"), "-nopreview", "-no204"}, wantStatus: "ICAP/1.0 200",
			wantText: []string{"RESPMOD HEADERS:", "Content-Length: 10240"}, wantBody: "10k"},
		{name: "RESPMOD 1 MB full echo", args: []string{"-s", "respmod", "-f", f("1m"), "-nopreview", "-no204"}, wantStatus: "ICAP/1.0 200", wantBody: "1m"},
		{name: "RESPMOD empty body", args: []string{"-s", "echo", "-f", f("empty"), "-nopreview", "-no204"}, wantStatus: "ICAP/1.0 200",
			wantText: []string{"Content-Length: 0"}, wantBody: "empty"},
		{name: "RESPMOD -nopreview -no204 -206", args: []string{"-s", "respmod", "-f", f("10k"), "-nopreview", "-no204", "-206"}, wantStatus: "ICAP/1.0 206",
			wantText: []string{"use 0 from the original body"}, wantBody: "10k"},
		{name: "RESPMOD -nopreview (Allow 204 outside preview)", args: []string{"-s", "respmod", "-f", f("10k"), "-nopreview"}, wantStatus: "ICAP/1.0 204"},
		{name: "header-only change -206", args: []string{"-s", "stamp", "-f", f("10k"), "-nopreview", "-no204", "-206"}, wantStatus: "ICAP/1.0 206",
			wantText: []string{"X-Stamped: icapd"}, wantBody: "10k"},
		{name: "header-only change, no 206", args: []string{"-s", "stamp", "-f", f("1m"), "-nopreview", "-no204"}, wantStatus: "ICAP/1.0 200",
			wantText: []string{"X-Stamped: icapd"}, wantBody: "1m"},
		{name: "header-only change, preview then 100 Continue", args: []string{"-s", "stamp", "-f", f("1m"), "-no204"}, wantStatus: "ICAP/1.0 200",
			wantText: []string{"X-Stamped: icapd"}, wantBody: "1m"},
		{name: "REQMOD POST full echo", args: []string{"-s", "reqmod", "-req", "http://origin.test/upload", "-method", "POST", "-f", f("10k"), "-nopreview", "-no204"},
			wantStatus: "ICAP/1.0 200", wantText: []string{"REQMOD HEADERS:", "POST http://origin.test/upload"}, wantBody: "10k"},
		{name: "REQMOD GET, no body", args: []string{"-s", "reqmod", "-req", "http://origin.test/page"}, wantStatus: "ICAP/1.0 204"},
		{name: "REQMOD preview 204", args: []string{"-s", "echo", "-req", "http://origin.test/upload", "-method", "POST", "-f", f("1m")}, wantStatus: "ICAP/1.0 204"},
		{name: "REQMOD on a RESPMOD service", args: []string{"-s", "respmod", "-req", "http://origin.test/page"}, wantStatus: "ICAP/1.0 405"},
		{name: "OPTIONS unknown service", args: []string{"-s", "nope"}, wantStatus: "ICAP/1.0 404", wantText: []string{"Allow 204: No"}},
		{name: "X-Client-IP header", args: []string{"-s", "echo", "-f", f("small"), "-x", "X-Client-IP: 192.0.2.99"}, wantStatus: "ICAP/1.0 204"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cicapClient(t, bin, d, tt.args...)
			if !strings.HasPrefix(r.status, tt.wantStatus) {
				t.Fatalf("status %q, want %s; output:\n%s", r.status, tt.wantStatus, r.stdout)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
			if tt.wantBody != "" {
				want := files[tt.wantBody]
				if !bytes.Equal(r.out, want) {
					t.Errorf("saved body: %d bytes (sha256 %x), want the %d bytes of %s (sha256 %x)",
						len(r.out), sha256.Sum256(r.out), len(want), tt.wantBody, sha256.Sum256(want))
				}
			}
		})
	}
	testenv.Poll(t, 10*time.Second, "the X-Client-IP transaction in the access log", func() bool {
		b, _ := os.ReadFile(d.cfg.AccessLog)
		return bytes.Contains(b, []byte("client_ip=192.0.2.99"))
	})
}
