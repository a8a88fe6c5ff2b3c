// Package browsertest loads a page in real headless Chromium (Debian's
// chromium package) for tests: the DOM after the load event, every
// console error, uncaught exception and failed load the page caused, and
// a PNG screenshot of the viewport. It drives the browser with the
// DevTools protocol over a WebSocket (golang.org/x/net/websocket), so it
// sees failed resource loads, which Chromium's stderr log does not show.
//
// Each Load runs its own browser with a fresh profile in a temporary
// directory, listening on loopback only, in its own process group; the
// whole group is killed when Load returns or the timeout expires, so no
// browser process outlives the test.
package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// Defaults of Options.
const (
	DefaultWidth   = 1280
	DefaultHeight  = 1000
	DefaultTimeout = 90 * time.Second // the first start of a cold browser on a busy machine is slow
)

// Options of Load; the zero value means the defaults.
type Options struct {
	Width, Height int           // viewport and screenshot size in CSS pixels
	Timeout       time.Duration // the whole run: start, load, screenshot
}

// Result is what the browser saw.
type Result struct {
	// Status is the HTTP status of the page itself (0 if unknown).
	Status int
	// DOM is document.documentElement.outerHTML after the load event.
	DOM string
	// Errors are the console errors (console.error, console.assert),
	// uncaught exceptions, error log entries (a failed or 4xx/5xx load, a
	// CSP violation) and failed network requests, one line each.
	Errors []string
	// Screenshot is a PNG of the viewport.
	Screenshot []byte
}

// Chromium returns the path of the chromium binary, or skips the test
// (fails it under CI=true) when Debian's chromium package is missing.
func Chromium(t testing.TB) string {
	t.Helper()
	return testenv.LookPath(t, "chromium", "chromium")
}

// Load opens url in a new headless Chromium, waits for the load event and
// returns the DOM, errors and a screenshot. Any failure to drive the
// browser fails the test (with the browser's stderr in the message).
func Load(t testing.TB, url string, opts Options) *Result {
	t.Helper()
	bin := Chromium(t)
	if opts.Width <= 0 {
		opts.Width = DefaultWidth
	}
	if opts.Height <= 0 {
		opts.Height = DefaultHeight
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	b, err := start(ctx, bin, t.TempDir(), opts)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	res, err := b.load(ctx, url, opts)
	if serr := b.stop(); serr != nil {
		t.Errorf("chromium: %v", serr)
	}
	if err != nil {
		t.Fatalf("chromium: %v\nstderr:\n%s", err, b.stderr.String())
	}
	return res
}

// browser is one running Chromium.
type browser struct {
	cmd    *exec.Cmd
	stderr testenv.SyncBuffer
	done   chan struct{} // closed when the process has exited
	ws     *websocket.Conn
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

func start(ctx context.Context, bin, dir string, opts Options) (*browser, error) {
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-dev-shm-usage", "--disable-extensions", "--disable-sync", "--no-first-run",
		"--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1",
		fmt.Sprintf("--window-size=%d,%d", opts.Width, opts.Height),
		"about:blank")
	// Its own process group, so that stop kills the launcher script, the
	// browser and its zygote, renderer and utility processes together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "HOME="+dir) // no writes to the real home
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	b := &browser{cmd: cmd, done: make(chan struct{})}
	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			b.stderr.Write([]byte(line + "\n"))
			if m := devtoolsRE.FindStringSubmatch(line); m != nil && !sent {
				wsURL <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pipe)
		cmd.Wait()
		close(b.done)
	}()
	var u string
	select {
	case u = <-wsURL:
	case <-b.done:
		return nil, fmt.Errorf("chromium exited before listening:\n%s", b.stderr.String())
	case <-ctx.Done():
		b.stop()
		return nil, fmt.Errorf("chromium did not start listening: %w\n%s", ctx.Err(), b.stderr.String())
	}
	if !strings.HasPrefix(u, "ws://127.0.0.1:") {
		b.stop()
		return nil, fmt.Errorf("DevTools address %q is not on loopback", u)
	}
	cfg, err := websocket.NewConfig(u, "http://127.0.0.1")
	if err != nil {
		b.stop()
		return nil, err
	}
	ws, err := cfg.DialContext(ctx)
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("DevTools connection: %w", err)
	}
	ws.MaxPayloadBytes = 64 << 20 // screenshots and DOMs are large
	b.ws = ws
	return b, nil
}

// stop kills the browser's process group and waits for the browser to
// exit; it returns an error if a process of the group is still there.
func (b *browser) stop() error {
	if b.ws != nil {
		b.ws.Close()
	}
	if b.cmd.Process == nil {
		return nil
	}
	pgid := b.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("chromium (pid %d) did not exit after SIGKILL", pgid)
	}
	// Children of the group that have not been reaped by init yet are
	// zombies and count; give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of chromium's group %d still alive after SIGKILL", pgid)
		}
		time.Sleep(20 * time.Millisecond) // polling the kernel; nothing to wait on
	}
	return nil
}

// message is a DevTools protocol message: a command's answer (ID) or an
// event (Method).
type message struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *protoError     `json:"error,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
}

type protoError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// session is a DevTools session on one page, read by one goroutine.
type session struct {
	ws      *websocket.Conn
	mu      sync.Mutex
	id      int
	session string
	waiting map[int]chan message
	events  chan message // every event, in order
	readErr chan error
}

func (s *session) read() {
	for {
		var m message
		if err := websocket.JSON.Receive(s.ws, &m); err != nil {
			s.readErr <- err
			return
		}
		if m.ID != 0 {
			s.mu.Lock()
			c := s.waiting[m.ID]
			delete(s.waiting, m.ID)
			s.mu.Unlock()
			if c != nil {
				c <- m
			}
			continue
		}
		select {
		case s.events <- m:
		default: // the page is far chattier than a dashboard should be; the reader would block
			s.readErr <- errors.New("too many DevTools events unread")
			return
		}
	}
}

// call sends a command (on the page's session unless top is true) and
// waits for its answer, decoding the result into out.
func (s *session) call(ctx context.Context, top bool, method string, params, out any) error {
	s.mu.Lock()
	s.id++
	id := s.id
	c := make(chan message, 1)
	s.waiting[id] = c
	s.mu.Unlock()
	m := map[string]any{"id": id, "method": method}
	if params != nil {
		m["params"] = params
	}
	if !top {
		m["sessionId"] = s.session
	}
	if err := websocket.JSON.Send(s.ws, m); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case a := <-c:
		if a.Error != nil {
			return fmt.Errorf("%s: %d %s", method, a.Error.Code, a.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(a.Result, out); err != nil {
				return fmt.Errorf("%s: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *browser) load(ctx context.Context, url string, opts Options) (*Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		b.ws.SetDeadline(dl)
	}
	s := &session{ws: b.ws, waiting: map[int]chan message{}, events: make(chan message, 4096), readErr: make(chan error, 1)}
	go s.read()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := s.call(ctx, true, "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := s.call(ctx, true, "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	s.session = att.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		if err := s.call(ctx, false, m, nil, nil); err != nil {
			return nil, err
		}
	}
	// Lifecycle events carry the loader, so the load of about:blank
	// (the new target's first page) cannot pass for the page's.
	if err := s.call(ctx, false, "Page.setLifecycleEventsEnabled", map[string]any{"enabled": true}, nil); err != nil {
		return nil, err
	}
	if err := s.call(ctx, false, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": opts.Width, "height": opts.Height, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		return nil, err
	}
	var nav struct {
		FrameID   string `json:"frameId"`
		LoaderID  string `json:"loaderId"`
		ErrorText string `json:"errorText"`
	}
	if err := s.call(ctx, false, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	res := &Result{}
	// Collect events until the load event of the page.
	for loaded := false; !loaded; {
		select {
		case ev := <-s.events:
			loaded = res.event(ev, nav.LoaderID)
		case err := <-s.readErr:
			return nil, fmt.Errorf("DevTools connection: %w", err)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the load event of %s: %w", url, ctx.Err())
		}
	}
	var eval struct {
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
	}
	if err := s.call(ctx, false, "Runtime.evaluate", map[string]any{
		"expression": "document.documentElement.outerHTML", "returnByValue": true}, &eval); err != nil {
		return nil, err
	}
	res.DOM = eval.Result.Value
	var shot struct {
		Data string `json:"data"`
	}
	if err := s.call(ctx, false, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		return nil, err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return nil, fmt.Errorf("screenshot: %w", err)
	}
	res.Screenshot = png
	// Events that arrived with the last answers (a late console error).
	for drained := false; !drained; {
		select {
		case ev := <-s.events:
			res.event(ev, nav.LoaderID)
		default:
			drained = true
		}
	}
	s.call(ctx, true, "Browser.close", nil, nil) // best effort; stop kills it anyway
	return res, nil
}

// event records what ev says about the page and reports whether it is
// the page's load event.
func (r *Result) event(ev message, loaderID string) bool {
	switch ev.Method {
	case "Page.lifecycleEvent":
		var p struct {
			LoaderID string `json:"loaderId"`
			Name     string `json:"name"`
		}
		return json.Unmarshal(ev.Params, &p) == nil && p.Name == "load" && p.LoaderID == loaderID
	case "Network.responseReceived":
		var p struct {
			LoaderID string `json:"loaderId"`
			Type     string `json:"type"`
			Response struct {
				Status int    `json:"status"`
				URL    string `json:"url"`
			} `json:"response"`
		}
		if json.Unmarshal(ev.Params, &p) == nil && p.Type == "Document" && p.LoaderID == loaderID {
			r.Status = p.Response.Status
		}
	case "Network.loadingFailed":
		var p struct {
			Type      string `json:"type"`
			ErrorText string `json:"errorText"`
			Canceled  bool   `json:"canceled"`
		}
		if json.Unmarshal(ev.Params, &p) == nil && !p.Canceled {
			r.Errors = append(r.Errors, fmt.Sprintf("network: %s load failed: %s", p.Type, p.ErrorText))
		}
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(ev.Params, &p) == nil && p.Entry.Level == "error" {
			r.Errors = append(r.Errors, fmt.Sprintf("log (%s): %s %s", p.Entry.Source, p.Entry.Text, p.Entry.URL))
		}
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(ev.Params, &p) == nil && (p.Type == "error" || p.Type == "assert") {
			var parts []string
			for _, a := range p.Args {
				if a.Value != nil {
					parts = append(parts, fmt.Sprint(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			r.Errors = append(r.Errors, "console."+p.Type+": "+strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(ev.Params, &p) == nil {
			r.Errors = append(r.Errors, "exception: "+p.Details.Text+" "+p.Details.Exception.Description)
		}
	}
	return false
}

// Expect is what CheckPage requires of a dashboard page besides a 200
// status and no error in the browser.
type Expect struct {
	// Contains are strings the rendered DOM must hold (the hosts the
	// test created...).
	Contains []string
	// Charts is the number of <svg> charts the DOM must hold.
	Charts int
	// Screenshot names the PNG artifact (see SaveScreenshot), taken at
	// DefaultWidth x DefaultHeight.
	Screenshot string
}

// CheckPage loads url in headless Chromium and checks it against e: HTTP
// 200, no console error, uncaught exception or failed load, every string
// of e.Contains in the rendered DOM, e.Charts charts; then saves the
// screenshot. Failures are reported with t.Errorf, so one run shows them
// all.
func CheckPage(t testing.TB, url string, e Expect) *Result {
	t.Helper()
	res := Load(t, url, Options{})
	if res.Status != 200 {
		t.Errorf("%s: HTTP status %d", url, res.Status)
	}
	if len(res.Errors) > 0 {
		t.Errorf("%s: errors in the browser:\n%s", url, strings.Join(res.Errors, "\n"))
	}
	for _, want := range e.Contains {
		if !strings.Contains(res.DOM, want) {
			t.Errorf("%s: the rendered page lacks %q", url, want)
		}
	}
	if n := strings.Count(res.DOM, "<svg"); n != e.Charts {
		t.Errorf("%s: %d charts rendered, want %d", url, n, e.Charts)
	}
	res.SaveScreenshot(t, e.Screenshot, DefaultWidth, DefaultHeight)
	return res
}

// SaveScreenshot checks that r.Screenshot is a PNG of width x height
// pixels and writes it as name under the directory in $TEST_ARTIFACTS
// (created if needed), or under a temporary directory of the test when
// that is unset; it logs and returns the path.
func (r *Result) SaveScreenshot(t testing.TB, name string, width, height int) string {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(r.Screenshot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if cfg.Width != width || cfg.Height != height {
		t.Errorf("screenshot is %dx%d, want %dx%d", cfg.Width, cfg.Height, width, height)
	}
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, r.Screenshot, 0o644); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	t.Logf("screenshot (%dx%d PNG, %d bytes): %s", cfg.Width, cfg.Height, len(r.Screenshot), p)
	return p
}
