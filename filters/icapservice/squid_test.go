package icapservice

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
)

// squidPolicy is the policy of the end-to-end test; %s is replaced by
// the path prefix the block rule names, so a reload can change it.
const squidPolicy = `
[profiles.upper.html]
minify = true

[[rules]]
name = "block-path"
match.service = ["reqmod"]
match.path = ["%s"]
action = "block"
reason = "blocked by the squid test"

[[rules]]
name = "slow-html"
match.service = ["respmod"]
match.bandwidth = ["slow"]
match.content_type = ["text/html"]
action = "transcode"
profile = "upper"

[[rules]]
name = "tag-response"
match.service = ["respmod"]
action = "pass"
response_headers.set = { "X-Policy-Test" = "yes" }
`

const squidPage = "<html><body>hello from the origin</body></html>"

// TestThroughSquid runs the service behind a real Squid: a blocked path
// gets the block page, a header rule reaches the client, a no-transform
// response passes unchanged while the same page without it is
// transformed, and a policy reload changes behaviour and the ISTag in
// Squid's icap_log without restarting anything.
func TestThroughSquid(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if strings.HasPrefix(r.URL.Path, "/nt/") {
			w.Header().Set("Cache-Control", "no-transform")
		}
		io.WriteString(w, squidPage)
	}))
	t.Cleanup(origin.Close)

	dir := t.TempDir()
	path := filepath.Join(dir, "policy.toml")
	writePolicy := func(blocked string) {
		t.Helper()
		if err := os.WriteFile(path, fmt.Appendf(nil, squidPolicy, blocked), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy("/blocked/*")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	holder, err := policy.NewHolder(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Policy: holder, Transcoder: upperTranscoder{}, Logger: logger}
	mux, srv := serveICAP(t, svc)
	holder.OnReload = func(p *policy.Policy, err error) {
		if err == nil {
			mux.SetISTag("/reqmod", ISTag(p))
			mux.SetISTag("/respmod", ISTag(p))
		}
	}
	// A second icap_log with the ISTag of each ICAP response. Squid
	// writes it as its effective user, hence a world-writable directory.
	logDir, err := os.MkdirTemp("", "icapservice-squid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(logDir) })
	if err := os.Chmod(logDir, 0o777); err != nil {
		t.Fatal(err)
	}
	istagLog := filepath.Join(logDir, "istag.log")
	// The ICAP configuration goes in Extra rather than Config.Services:
	// squidtest's own icap_log line uses buffer-size=0, which Squid 5.7
	// (Debian bookworm) rejects; buffered_logs off gets each line written
	// at once instead. Later directives override its "icap_enable off".
	sq := squidtest.Start(t, squidtest.Config{
		Extra: []string{
			"icap_enable on",
			"icap_preview_enable on",
			"icap_preview_size 1024",
			"icap_206_enable on",
			"adaptation_send_client_ip on",
			"icap_service req reqmod_precache " + srv.ServiceURL("/reqmod") + " bypass=0",
			"adaptation_access req allow all",
			"icap_service resp respmod_precache " + srv.ServiceURL("/respmod") + " bypass=0",
			"adaptation_access resp allow all",
			`logformat istag %icap::rm %{ISTag}icap::<h %icap::ru`,
			"icap_log stdio:" + istagLog + " istag",
			"buffered_logs off",
		},
	})
	client := sq.Client()
	get := func(path string, hdr http.Header) (*http.Response, string) {
		t.Helper()
		resp, b := testenv.Get(t, client, origin.URL+path, hdr)
		return resp, string(b)
	}

	resp, body := get("/blocked/x", nil)
	if resp.StatusCode != 403 || !strings.Contains(body, "block-path") || !strings.Contains(body, "blocked by the squid test") {
		t.Errorf("blocked: %d %q", resp.StatusCode, body)
	}
	resp, body = get("/page/1", nil)
	if resp.StatusCode != 200 || body != squidPage || resp.Header.Get("X-Policy-Test") != "yes" {
		t.Errorf("header rule: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	slow := http.Header{"Save-Data": {"on"}}
	resp, body = get("/page/2", slow)
	if body != strings.ToUpper(squidPage) || !strings.Contains(resp.Header.Get("Vary"), "Save-Data") {
		t.Errorf("transcode: %q Vary %q", body, resp.Header.Get("Vary"))
	}
	resp, body = get("/nt/3", slow)
	if resp.StatusCode != 200 || body != squidPage {
		t.Errorf("no-transform: %d %q", resp.StatusCode, body)
	}

	tag1 := ISTag(holder.Policy())
	writePolicy("/elsewhere/*")
	if err := holder.Reload(); err != nil {
		t.Fatal(err)
	}
	tag2 := ISTag(holder.Policy())
	resp, body = get("/blocked/y", nil)
	if resp.StatusCode != 200 || body != squidPage {
		t.Errorf("after reload: %d %q", resp.StatusCode, body)
	}

	// Squid logs an ICAP transaction when it ends, which may be after
	// the HTTP client got its answer: poll for the reloaded tag. Squid
	// writes the quotes of the ISTag as %22.
	want1, want2 := strings.Trim(tag1, `"`), strings.Trim(tag2, `"`)
	var log string
	testenv.Poll(t, 10*time.Second, "the reloaded ISTag in icap_log", func() bool {
		b, err := os.ReadFile(istagLog)
		if err != nil {
			t.Fatal(err)
		}
		log = string(b)
		select {
		case <-sq.Exited():
			t.Fatal("squid exited")
		default:
		}
		return strings.Contains(log, "REQMOD %22"+want2+"%22")
	})
	if tag1 == tag2 || !strings.Contains(log, "REQMOD %22"+want1+"%22") || !strings.Contains(log, "REQMOD %22"+want2+"%22") {
		t.Errorf("ISTags %s → %s not both in icap_log:\n%s", tag1, tag2, log)
	}
}

// serveICAP serves svc on /reqmod and /respmod of a loopback ICAP server
// as icapd does (preview, 204, 206).
func serveICAP(t *testing.T, svc *Service) (*icap.ServeMux, *icaptest.Server) {
	t.Helper()
	mux := icap.NewServeMux()
	for _, p := range []struct{ path, method string }{{"/reqmod", icap.MethodREQMOD}, {"/respmod", icap.MethodRESPMOD}} {
		mux.Handle(p.path, svc, icap.ServiceOptions{
			Methods: []string{p.method}, Service: "policy test", Allow204: true, Allow206: true,
			Preview: icap.DefaultPreview, TransferPreview: []string{"*"}, XInclude: []string{"X-Client-IP"},
			ISTag: ISTag(svc.Policy.Policy()),
		})
	}
	srv := icaptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return mux, srv
}

// TestEarlyHoldThroughSquid: behind Squid 5.7, early-committed pages of
// unknown length for a Save-Data client arrive transformed when they fit
// EarlyHoldBytes and complete and unchanged (outcome too-large) when
// they do not, never stalled. ICAPSERVICE_HOLD_PROBE=N instead sends N
// pages of just under EarlyHoldBytes=ICAPSERVICE_HOLD_BYTES (default the
// default) and logs how many stalled (no answer within 20 s): the probe
// behind DefaultEarlyHoldBytes.
func TestEarlyHoldThroughSquid(t *testing.T) {
	hold := int64(DefaultEarlyHoldBytes)
	if s := os.Getenv("ICAPSERVICE_HOLD_BYTES"); s != "" {
		var err error
		if hold, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("ICAPSERVICE_HOLD_BYTES=%q: %v", s, err)
		}
	}
	probe, _ := strconv.Atoi(os.Getenv("ICAPSERVICE_HOLD_PROBE"))
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Type", "text/html")
		io.Copy(w, squidtest.Body(n)) // no Content-Length: committed early
	}))
	t.Cleanup(origin.Close)
	f := newFixture(t, earlyUpper{})
	f.svc.EarlyHoldBytes, f.svc.MaxBodyBytes = hold, 32<<20
	f.svc.Counters = &Counters{}
	_, srv := serveICAP(t, f.svc)
	sq := squidtest.Start(t, squidtest.Config{Services: []squidtest.Service{
		{Name: "req", Point: squidtest.ReqmodPrecache, URL: srv.ServiceURL("/reqmod")},
		{Name: "resp", Point: squidtest.RespmodPrecache, URL: srv.ServiceURL("/respmod")},
	}})
	client := sq.Client()
	client.Timeout = 20 * time.Second
	get := func(i int, n int64) ([]byte, error) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/p%d?n=%d", origin.URL, i, n), nil)
		req.Header.Set("Save-Data", "on")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if probe > 0 {
		stalled := 0
		for i := range probe {
			if _, err := get(i, hold-1024); err != nil {
				stalled++
			}
		}
		t.Logf("EarlyHoldBytes %d, pages of %d bytes held whole: %d of %d stalled", hold, hold-1024, stalled, probe)
		return
	}
	for i, tc := range []struct {
		n       int64
		outcome string
	}{{hold - 1024, "adapted"}, {8 << 20, OutcomeTooLarge}, {256 << 20, OutcomeTooLarge}} {
		want, _ := io.ReadAll(squidtest.Body(tc.n))
		if tc.outcome == "adapted" {
			want = bytes.ToUpper(want)
		}
		got, err := get(i, tc.n)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d-byte page: %d bytes, err %v; want %d bytes (%s)", tc.n, len(got), err, len(want), tc.outcome)
		}
	}
	if a, tl := f.svc.Counters.Early("adapted"), f.svc.Counters.Early(OutcomeTooLarge); a != 1 || tl != 2 {
		t.Errorf("early commits adapted %d, too-large %d; want 1 and 2", a, tl)
	}
}
