package icapd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	edgeadapt "github.com/edgeadapt/edgeadapt"
	"github.com/edgeadapt/edgeadapt/filters/icapservice"
	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/transcode"
)

// Clients of the in-process spand of the pipeline tests.
var (
	slowClient = netip.MustParseAddr("10.9.0.56")  // measured at 56 kbit/s
	fastClient = netip.MustParseAddr("10.9.0.100") // measured at 20 Mbit/s
)

// startSpand runs a real spand API server on loopback with a memory
// store holding two reports (the policy's min_reports) for each client.
func startSpand(t *testing.T) string {
	t.Helper()
	store, err := spand.NewMemoryStore(spand.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&spand.Server{Store: store, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(ts.Close)
	c := &spand.Client{BaseURL: ts.URL}
	now := time.Now()
	var reports []spand.Report
	for i := range 2 {
		for _, cl := range []struct {
			addr netip.Addr
			rate float64 // bytes/s
		}{{slowClient, 56e3 / 8}, {fastClient, 20e6 / 8}} {
			reports = append(reports, spand.Report{
				Local: cl.addr, Remote: netip.MustParseAddr("192.0.2.80"), Class: spand.ClassWeb,
				Start: now.Add(-time.Duration(10+i) * time.Second), Duration: 4,
				Bytes: int64(cl.rate * 4), Throughput: cl.rate, RTTMin: 300, RTTMedian: 320,
			})
		}
	}
	if err := c.Report(context.Background(), reports); err != nil {
		t.Fatal(err)
	}
	return ts.URL
}

// repoPolicy copies the repository's policy.toml to a temporary
// directory (so a test can change it) and returns the copy's path.
func repoPolicy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startPipeline runs a daemon with the pipeline installed, on the
// repository's policy and a real spand. maxTranscode is
// PipelineConfig.MaxTranscodeBytes.
func startPipeline(t *testing.T, policyFile string, maxTranscode int64) (*Daemon, *Pipeline, *testenv.SyncBuffer) {
	t.Helper()
	// The tests check what is produced, not how fast: no transcode may
	// time out on a busy machine.
	return startPipelineConfig(t, PipelineConfig{PolicyFile: policyFile, MaxTranscodeBytes: maxTranscode, TranscodeTimeout: 2 * time.Minute})
}

// startPipelineConfig is startPipeline with cfg, to which it adds a real
// spand and a fast file watch.
func startPipelineConfig(t *testing.T, cfg PipelineConfig) (*Daemon, *Pipeline, *testenv.SyncBuffer) {
	t.Helper()
	d, logBuf := startDaemon(t, Config{})
	cfg.Spand, cfg.WatchInterval = startSpand(t), 10*time.Millisecond
	pl, err := NewPipeline(cfg, slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	pl.Install(d)
	return d, pl, logBuf
}

// doICAP sends req with cl and returns the answer and its whole body.
func doICAP(t *testing.T, cl *icap.Client, req *icap.Request) (*icap.Response, []byte) {
	t.Helper()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestPipelineTranscodeTimeout checks that PipelineConfig.TranscodeTimeout
// (-transcode-timeout) reaches the transcoder and survives a policy
// reload: with 1 ns a real corpus photo for a Save-Data client passes
// unchanged, logged and counted with reason timeout; with zero (the
// default, transcode.DefaultTimeout) the same photo is adapted.
func TestPipelineTranscodeTimeout(t *testing.T) {
	photo := testenv.ReadCorpus(t, "images", "sharp__flowers.jpeg") // 85 KB
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration // Limits.Timeout in force
		adapted bool
		metrics []string // lines of /metrics after two requests
		never   string   // a line that must not be there
	}{
		{name: "1ns passes the original", timeout: time.Nanosecond, want: time.Nanosecond,
			metrics: []string{`icapd_transcode_passed_total{reason="timeout"} 2`, "icapd_transcode_adapted_total 0"}},
		{name: "default adapts", timeout: 0, want: transcode.DefaultTimeout, adapted: true,
			metrics: []string{"icapd_transcode_adapted_total 2"}, never: `icapd_transcode_passed_total{reason="timeout"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, pl, logBuf := startPipelineConfig(t, PipelineConfig{PolicyFile: repoPolicy(t), TranscodeTimeout: tt.timeout})
			pl.Service.EarlyCommitBytes = 8 << 20 // hold the photo whole, before the first message
			if got := pl.Transcoder.T.Limits.Timeout; got != tt.want {
				t.Fatalf("transcoder timeout %v, want %v", got, tt.want)
			}
			cl := &icap.Client{}
			defer cl.CloseIdleConnections()
			send := func() {
				t.Helper()
				req := newRespmod(t, icapURL(d, RespmodPath), photo, 1024, true, false)
				req.Response.Header.Set("Content-Type", "image/jpeg")
				req.Request.Header.Set("Save-Data", "on")
				resp, body := doICAP(t, cl, req)
				if resp.StatusCode != 200 || resp.Header.Get("X-Policy-Rule") != "slow-tiny" {
					t.Fatalf("ICAP status %d, rule %q: want 200 from slow-tiny", resp.StatusCode, resp.Header.Get("X-Policy-Rule"))
				}
				if adapted := !bytes.Equal(body, photo); adapted != tt.adapted || (adapted && len(body) >= len(photo)) {
					t.Fatalf("body of %d bytes (original %d): adapted=%v, want %v", len(body), len(photo), adapted, tt.adapted)
				}
			}
			send()
			// A reload (as on SIGHUP) keeps the limit: it is a flag, not
			// part of the policy.
			if err := pl.Reload(); err != nil {
				t.Fatal(err)
			}
			if got := pl.Transcoder.T.Limits.Timeout; got != tt.want {
				t.Fatalf("after reload: transcoder timeout %v, want %v", got, tt.want)
			}
			send()
			_, metrics := httpGet(t, "http://"+d.AdminAddr()+"/metrics")
			for _, want := range tt.metrics {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %s:\n%s", want, metrics)
				}
			}
			if tt.never != "" && strings.Contains(metrics, tt.never) {
				t.Errorf("/metrics has %s:\n%s", tt.never, metrics)
			}
			if log := logBuf.String(); !tt.adapted && (!strings.Contains(log, "transcode: passing original") || !strings.Contains(log, "reason=timeout")) {
				t.Errorf("log lacks the pass with reason=timeout:\n%s", log)
			}
		})
	}
}

// TestPipelineRespmod sends corpus files through icapd's /respmod (the
// repository's policy, a real spand, icap.Client on loopback) as clients
// of different speeds: slow clients (Save-Data, or measured at 56 kbit/s
// by spand) get a smaller, valid image with a header that describes it;
// fast clients get 204 or the identical body; a body that fails to
// transcode passes unchanged; HTML is minified.
func TestPipelineRespmod(t *testing.T) {
	photo := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg") // 1920x1080, quality 100
	page := testenv.ReadCorpus(t, "html", "sample_wikipedia.html")
	broken := append(append([]byte{}, photo[:4096]...), bytes.Repeat([]byte{0xff, 0x00}, 4096)...)
	// icap.Client keeps sending a body while icapd holds it (unlike Squid
	// 5.7), so the corpus photo can be held whole before the answer and
	// get the full header (TestPipelineThroughSquid tests early commits).
	d, pl, _ := startPipeline(t, repoPolicy(t), 8<<20)
	pl.Service.EarlyCommitBytes = 8 << 20 // before the first message
	const origETag = `"origin-etag-1"`

	tests := []struct {
		name        string
		body        []byte
		contentType string
		hdr         map[string]string // request header
		clientIP    netip.Addr
		allow204    bool
		status      int    // ICAP status
		rule        string // X-Policy-Rule
		adapted     bool   // a new body, with transcode's header
		maxSide     int    // adapted image: the larger side at most
	}{
		{name: "save-data photo", body: photo, contentType: "image/jpeg", hdr: map[string]string{"Save-Data": "on", "Accept": "image/jpeg,image/*"},
			allow204: true, status: 200, rule: "slow-tiny", adapted: true, maxSide: 320},
		{name: "56kbit photo", body: photo, contentType: "image/jpeg", clientIP: slowClient,
			allow204: true, status: 200, rule: "slow-tiny", adapted: true, maxSide: 320},
		{name: "fast photo 204", body: photo, contentType: "image/jpeg", clientIP: fastClient,
			allow204: true, status: 204, rule: "fast-clients-pass"},
		{name: "fast photo echo", body: photo, contentType: "image/jpeg", clientIP: fastClient,
			status: 200, rule: "fast-clients-pass"},
		{name: "broken jpeg passes", body: broken, contentType: "image/jpeg", hdr: map[string]string{"Save-Data": "on"},
			allow204: true, status: 200, rule: "slow-tiny"},
		{name: "save-data html", body: page, contentType: "text/html; charset=utf-8", hdr: map[string]string{"Save-Data": "on"},
			allow204: true, status: 200, rule: "slow-tiny", adapted: true},
	}
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			preview := 1024 // as Squid sends
			if !tt.allow204 {
				preview = -1 // a 204 is allowed in a preview: echo needs none
			}
			req := newRespmod(t, icapURL(d, RespmodPath), tt.body, preview, tt.allow204, false)
			req.Response.Header.Set("Content-Type", tt.contentType)
			req.Response.Header.Set("ETag", origETag)
			for k, v := range tt.hdr {
				req.Request.Header.Set(k, v)
			}
			if tt.clientIP.IsValid() {
				req.Header.Set("X-Client-IP", tt.clientIP.String())
			}
			resp, body := doICAP(t, cl, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("ICAP status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("X-Policy-Rule"); got != tt.rule {
				t.Errorf("X-Policy-Rule %q, want %q", got, tt.rule)
			}
			if got, want := resp.ISTag(), pl.ISTag(); got != want {
				t.Errorf("ISTag %q, want the policy's %q", got, want)
			}
			if tt.status == 204 {
				return
			}
			h := resp.Response.Header
			if !tt.adapted {
				if !bytes.Equal(body, tt.body) {
					t.Fatalf("body changed: %d bytes, want the original %d", len(body), len(tt.body))
				}
				if h.Get("X-Adapted") != "" || h.Get("ETag") != origETag || h.Get("Content-Length") != strconv.Itoa(len(tt.body)) {
					t.Errorf("unchanged body with a changed header: %v", h)
				}
				return
			}
			if len(body) == 0 || len(body) >= len(tt.body) {
				t.Fatalf("adapted body is %d bytes, original %d", len(body), len(tt.body))
			}
			if got := h.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, body has %d bytes", got, len(body))
			}
			if et := h.Get("ETag"); et == origETag || strings.HasPrefix(et, "W/") || !strings.HasPrefix(et, `"`) {
				t.Errorf("ETag %q: want a new strong ETag", et)
			}
			if xa := h.Get("X-Adapted"); !strings.Contains(xa, "original="+strconv.Itoa(len(tt.body))) {
				t.Errorf("X-Adapted %q does not give the original size %d", xa, len(tt.body))
			}
			vary := strings.Join(h.Values("Vary"), ",")
			for _, name := range []string{"Save-Data", "Downlink", "ECT"} {
				if !strings.Contains(vary, name) {
					t.Errorf("Vary %q lacks %s, which the decision read", vary, name)
				}
			}
			if tt.maxSide > 0 {
				if got := h.Get("Content-Type"); got != "image/jpeg" {
					t.Errorf("Content-Type %q, want image/jpeg (the client does not accept WebP)", got)
				}
				if !strings.Contains(vary, "Accept") {
					t.Errorf("Vary %q lacks Accept", vary)
				}
				img, format, err := image.Decode(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("adapted image does not decode: %v", err)
				}
				b := img.Bounds()
				if format != "jpeg" || max(b.Dx(), b.Dy()) > tt.maxSide || max(b.Dx(), b.Dy()) < tt.maxSide-1 {
					t.Errorf("adapted image is %s %dx%d, want jpeg with its larger side %d", format, b.Dx(), b.Dy(), tt.maxSide)
				}
			} else {
				if got := h.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
					t.Errorf("Content-Type %q, want text/html", got)
				}
				// Minified: fewer comments (IE conditional comments stay),
				// links kept, and the images became placeholders.
				if bytes.Count(body, []byte("<!--")) >= bytes.Count(tt.body, []byte("<!--")) || !bytes.Contains(body, []byte("</a>")) {
					t.Errorf("HTML not minified, or broken: %.200q", body)
				}
				if xa := h.Get("X-Adapted"); !strings.Contains(xa, "minify") || !strings.Contains(xa, "placeholders") {
					t.Errorf("X-Adapted %q: want minify and placeholders (profile tiny)", xa)
				}
			}
		})
	}

	// /metrics counts the decisions per rule and the transcodes.
	_, metrics := httpGet(t, "http://"+d.AdminAddr()+"/metrics")
	for _, want := range []string{
		`icapd_policy_decisions_total{rule="slow-tiny",action="transcode",skipped="false"} 4`,
		`icapd_policy_decisions_total{rule="fast-clients-pass",action="pass",skipped="false"} 2`,
		"icapd_transcode_adapted_total 3",
		`icapd_transcode_passed_total{reason="error"} 1`,
		"icapd_policy_info{version=" + strconv.Quote(pl.Holder.Version()),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}
}

// TestPipelineReloadISTag changes the policy file and reloads it the way
// SIGHUP does (Pipeline.Reload): the services' ISTag changes, in OPTIONS
// and in RESPMOD answers, and the new rules apply; a bad file is refused
// and the ISTag stays. Then the file watch picks up a change by itself.
func TestPipelineReloadISTag(t *testing.T) {
	path := repoPolicy(t)
	d, pl, logBuf := startPipeline(t, path, 0)
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	optionsTag := func() string {
		t.Helper()
		resp, err := cl.Options(context.Background(), icapURL(d, RespmodPath))
		if err != nil {
			t.Fatal(err)
		}
		return resp.ISTag()
	}
	rule := func() (string, string) {
		t.Helper()
		req := newRespmod(t, icapURL(d, RespmodPath), []byte("<html><body>hi</body></html>"), -1, true, false)
		req.Response.Header.Set("Content-Type", "text/html")
		req.Header.Set("X-Client-IP", fastClient.String())
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Header.Get("X-Policy-Rule"), resp.ISTag()
	}
	tag0 := optionsTag()
	if r, tag := rule(); r != "fast-clients-pass" || tag != tag0 {
		t.Fatalf("before reload: rule %q ISTag %q (OPTIONS %q)", r, tag, tag0)
	}
	src, _ := os.ReadFile(path)
	edited := strings.Replace(string(src), `name = "fast-clients-pass"`, `name = "fast-clients-pass-v2"`, 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pl.Reload(); err != nil {
		t.Fatal(err)
	}
	tag1 := optionsTag()
	if r, tag := rule(); tag1 == tag0 || r != "fast-clients-pass-v2" || tag != tag1 {
		t.Fatalf("after reload: rule %q, ISTag %q, OPTIONS %q (was %q)", r, tag, tag1, tag0)
	}

	// A bad file is refused with file, line and key; the policy stays.
	if err := os.WriteFile(path, []byte(edited+"\n[[rules]]\nname = \"bad\"\nactoin = \"pass\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := pl.Reload()
	if err == nil || !strings.Contains(err.Error(), path+":") || !strings.Contains(err.Error(), "actoin") {
		t.Fatalf("bad file: err %v, want one naming %s:LINE and the key", err, path)
	}
	if got := optionsTag(); got != tag1 {
		t.Errorf("ISTag changed to %q after a failed reload", got)
	}
	if !strings.Contains(logBuf.String(), "keeping the old policy") {
		t.Errorf("failed reload not logged:\n%s", logBuf.String())
	}

	// The watch loop reloads a changed file without a signal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pl.Watch(ctx)
	edited = strings.Replace(string(src), `name = "fast-clients-pass"`, `name = "fast-clients-pass-v3"`, 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, 10*time.Second, "the watch to reload the policy", func() bool { return optionsTag() != tag1 })
	if r, _ := rule(); r != "fast-clients-pass-v3" {
		t.Errorf("after the watch reloaded: rule %q", r)
	}
	_, metrics := httpGet(t, "http://"+d.AdminAddr()+"/metrics")
	if !strings.Contains(metrics, `icapd_policy_reloads_total{result="ok"} 2`) || !strings.Contains(metrics, `icapd_policy_reloads_total{result="error"} 1`) {
		t.Errorf("/metrics reload counters wrong:\n%s", metrics)
	}
}

// TestPipelineDefaultPolicy: with no -policy, icapd uses ./policy.toml
// when there is one, else its built-in copy of the repository's.
func TestPipelineDefaultPolicy(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	pl, err := NewPipeline(PipelineConfig{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	builtin := pl.Holder.Path()
	if pl.Holder.Policy().Hash != sha256.Sum256(edgeadapt.DefaultPolicy) || filepath.Dir(builtin) == dir {
		t.Errorf("built-in policy not used: %s", builtin)
	}
	pl.Close()
	if _, err := os.Stat(builtin); !os.IsNotExist(err) {
		t.Errorf("temporary copy %s of the built-in policy not removed: %v", builtin, err)
	}

	local := "[[rules]]\nname = \"local\"\naction = \"pass\"\n"
	if err := os.WriteFile(DefaultPolicyFile, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	pl, err = NewPipeline(PipelineConfig{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if got := fmt.Sprint(pl.Holder.Policy().Rules()); pl.Holder.Path() != DefaultPolicyFile || got != "[local]" {
		t.Errorf("./policy.toml not used: %s %s", pl.Holder.Path(), got)
	}

	if _, err := NewPipeline(PipelineConfig{PolicyFile: "missing.toml"}, nil); err == nil {
		t.Error("a missing -policy file was accepted")
	}
	if _, err := NewPipeline(PipelineConfig{Spand: "127.0.0.1:7070"}, nil); err == nil {
		t.Error("a -spand without scheme was accepted")
	}
}

// TestPipelineThroughSquid fetches JPEGs through a real Squid using
// icapd's services with the repository's policy and the default limits:
// with Save-Data the client receives a smaller, valid JPEG whose header
// describes it (and Squid logs an ICAP_MOD), without it the original
// bytes (no rule matches a client of unknown speed: ICAP_ECHO). Photos
// of 829 and 882 KB (2000x2950), larger than the 64 KB Squid 5.7 sends of
// a body before the ICAP server answers, are committed early: a slow
// client gets a smaller JPEG of the profile's size, with the original's
// type, a weak ETag, no X-Adapted (the header goes out before the
// transcode's outcome is known) and no stall (the HTTP client's timeout
// is far below Squid's ICAP timeout); a fast client (Downlink: 10) gets
// the identical bytes. A broken JPEG committed early arrives as its
// original bytes, its header claiming no adaptation.
func TestPipelineThroughSquid(t *testing.T) {
	big := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg") // 829 KB
	// A generous timeout: this is set-up, on a busy machine perhaps.
	web, err := (&transcode.Transcoder{Limits: transcode.Limits{Timeout: 2 * time.Minute}}).Transcode(context.Background(), transcode.Input{
		Bytes:  big,
		Header: http.Header{"Content-Type": {"image/jpeg"}},
	}, transcode.Profile{MaxWidth: 640, Quality: 70})
	if err != nil {
		t.Fatal(err)
	}
	photo := web.Body
	if len(photo) >= icapservice.DefaultEarlyCommitBytes {
		t.Fatalf("web-sized photo is %d bytes, want < %d (held, not committed early)", len(photo), icapservice.DefaultEarlyCommitBytes)
	}
	people := testenv.ReadCorpus(t, "images", "imagor__people.jpg") // 882 KB, 2000x2950
	// A JPEG that fails to decode after its header has been committed.
	broken := append(append([]byte{}, big[:4096]...), bytes.Repeat([]byte{0xff, 0x00}, 64<<10)...)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("ETag", `"bird-1"`)
		w.Header().Set("Cache-Control", "no-store")
		b := photo
		switch r.URL.Path {
		case "/big.jpg":
			b = big
		case "/people.jpg":
			b = people
		case "/broken.jpg":
			b = broken
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	t.Cleanup(origin.Close)
	d, pl, logBuf := startPipeline(t, repoPolicy(t), 0)
	sq := squidtest.Start(t, squidtest.Config{Services: []squidtest.Service{
		{Name: "edge_req", Point: squidtest.ReqmodPrecache, URL: icapURL(d, ReqmodPath)},
		{Name: "edge_resp", Point: squidtest.RespmodPrecache, URL: icapURL(d, RespmodPath)},
	}})
	client := sq.Client()
	// A stalled body waits for Squid's ICAP timeout (15 minutes); a
	// transcode, even on a busy machine or with -race, takes seconds.
	client.Timeout = 100 * time.Second
	get := func(path string, saveData bool, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		h := http.Header{}
		if saveData {
			h.Set("Save-Data", "on")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		resp, b := testenv.Get(t, client, origin.URL+path, h)
		if resp.StatusCode != 200 {
			t.Fatalf("GET through Squid: %d", resp.StatusCode)
		}
		return resp, b
	}

	resp, body := get("/bird.jpg", true)
	img, format, err := image.Decode(bytes.NewReader(body))
	if err != nil || format != "jpeg" || len(body) >= len(photo) {
		t.Fatalf("slow client got %d bytes (%s, %v), original %d", len(body), format, err, len(photo))
	}
	if b := img.Bounds(); max(b.Dx(), b.Dy()) != 320 {
		t.Errorf("slow client got %dx%d, want 320 px wide", b.Dx(), b.Dy())
	}
	h := resp.Header
	if h.Get("Content-Length") != strconv.Itoa(len(body)) || h.Get("X-Adapted") == "" ||
		!strings.Contains(h.Get("Vary"), "Save-Data") || h.Get("ETag") == `"bird-1"` {
		t.Errorf("slow client's header does not describe the adapted image: %v", h)
	}

	resp, body = get("/bird.jpg", false)
	if !bytes.Equal(body, photo) || resp.Header.Get("ETag") != `"bird-1"` || resp.Header.Get("X-Adapted") != "" {
		t.Errorf("client of unknown speed: %d bytes, header %v; want the original", len(body), resp.Header)
	}

	var outcomes []string
	sq.WaitICAPLog(t, 30*time.Second, func(all []squidtest.ICAPLogEntry) bool {
		outcomes = outcomes[:0]
		for _, e := range all {
			if e.Method == "RESPMOD" {
				outcomes = append(outcomes, e.Outcome)
			}
		}
		return len(outcomes) >= 2
	})
	if len(outcomes) != 2 || outcomes[0] != "ICAP_MOD" || outcomes[1] != "ICAP_ECHO" {
		t.Errorf("Squid's RESPMOD outcomes %q, want ICAP_MOD then ICAP_ECHO", outcomes)
	}

	// Photos over the 64 KB Squid sends before an answer: committed
	// early for a slow client, untouched for a fast one.
	for _, tc := range []struct {
		path string
		orig []byte
	}{{"/big.jpg", big}, {"/people.jpg", people}} {
		start := time.Now()
		resp, body := get(tc.path, true)
		took := time.Since(start)
		img, format, err := image.Decode(bytes.NewReader(body))
		if err != nil || format != "jpeg" || len(body) >= len(tc.orig) {
			t.Fatalf("%s, slow client: %d bytes (%s, %v), original %d", tc.path, len(body), format, err, len(tc.orig))
		}
		b := img.Bounds()
		if max(b.Dx(), b.Dy()) != 320 {
			t.Errorf("%s, slow client: %dx%d, want 320 px on the longer side", tc.path, b.Dx(), b.Dy())
		}
		h := resp.Header
		if h.Get("Content-Type") != "image/jpeg" || !strings.HasPrefix(h.Get("ETag"), `W/"ea-`) ||
			h.Get("X-Adapted") != "" || !strings.Contains(h.Get("Vary"), "Save-Data") {
			t.Errorf("%s, slow client: header %v", tc.path, h)
		}
		t.Logf("%s through Squid, slow client: %d -> %d bytes (%dx%d) in %v", tc.path, len(tc.orig), len(body), b.Dx(), b.Dy(), took.Round(time.Millisecond))

		start = time.Now()
		resp, body = get(tc.path, false, "Downlink", "10")
		if !bytes.Equal(body, tc.orig) || resp.Header.Get("ETag") != `"bird-1"` || resp.Header.Get("X-Adapted") != "" {
			t.Errorf("%s, fast client: %d bytes, header %v; want the original %d bytes", tc.path, len(body), resp.Header, len(tc.orig))
		}
		t.Logf("%s through Squid, fast client: %d bytes in %v", tc.path, len(body), time.Since(start).Round(time.Millisecond))
	}
	// Committed early, then the transcode fails: the original bytes
	// follow, under a header that claims no adaptation.
	resp, body = get("/broken.jpg", true)
	if !bytes.Equal(body, broken) || resp.Header.Get("X-Adapted") != "" || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("broken photo, slow client: %d bytes, header %v; want the original %d bytes, no X-Adapted, after an early commit", len(body), resp.Header, len(broken))
	}
	if n := pl.Service.Counters.Early("error"); n != 1 {
		t.Errorf("early commits that sent the original after an error: %d, want 1", n)
	}
	if n := pl.Service.Counters.Early("adapted"); n != 2 {
		t.Errorf("early commits adapted: %d, want 2\n%s", n, logBuf.String())
	}
}
