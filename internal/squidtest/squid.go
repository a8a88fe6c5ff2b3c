package squidtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// Vectoring points of an ICAP service (squid.conf icap_service).
const (
	ReqmodPrecache  = "reqmod_precache"
	RespmodPrecache = "respmod_precache"
)

// Defaults of Config.
const (
	// DefaultPreviewSize is the icap_preview_size Squid is given.
	DefaultPreviewSize = 1024
	// DefaultStartTimeout bounds how long Start waits for Squid to listen.
	DefaultStartTimeout = 20 * time.Second
)

// Service is one icap_service line.
type Service struct {
	// Name is Squid's name for the service (letters, digits, '_').
	Name string
	// Point is the vectoring point: ReqmodPrecache or RespmodPrecache.
	Point string
	// URL is the ICAP URL, e.g. icap://127.0.0.1:1344/respmod.
	URL string
	// Bypass lets Squid skip the service when it fails (bypass=1). The
	// default, false, makes every ICAP failure visible to the test.
	Bypass bool
}

// Config describes the generated squid.conf. The zero value starts a Squid
// with ICAP disabled.
type Config struct {
	// Services are the ICAP services; every one is applied to all traffic
	// (adaptation_access NAME allow all). ICAP is enabled when non-empty.
	Services []Service
	// PreviewSize is icap_preview_size; zero means DefaultPreviewSize.
	PreviewSize int
	// NoPreview turns icap_preview_enable off.
	NoPreview bool
	// No206 turns icap_206_enable off.
	No206 bool
	// ICAPConf, if set, replaces the ICAP directives generated from
	// Services, PreviewSize, NoPreview and No206 (icap_enable,
	// icap_service, adaptation_access...), e.g. to run a snippet from the
	// README as written. The harness still adds its icap_log.
	ICAPConf string
	// Extra lines are appended verbatim to squid.conf.
	Extra []string
	// StartTimeout bounds the wait for Squid to listen; zero means
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

// ICAPLogFormat is the logformat of the icap_log Squid writes; ParseICAPLog
// reads it. Fields: time, service name, ICAP method, transaction outcome
// (ICAP_ECHO for 204, ICAP_MOD for 200, ICAP_PART_ECHO for 206 with
// use-original-body, ICAP_ERR_*...), ICAP status,
// response time in ms, bytes sent to and received from the ICAP server,
// ICAP URI and the X-Client-IP Squid sent.
const ICAPLogFormat = `%ts.%03tu %icap::<service_name %icap::rm %icap::to %icap::Hs %icap::tr %icap::>st %icap::<st %icap::ru %{X-Client-IP}icap::>h`

// Squid is a running Squid.
type Squid struct {
	// Addr is the host:port of its http_port on 127.0.0.1.
	Addr string
	// Dir holds squid.conf, the logs and the pid file.
	Dir string
	// Conf is the generated squid.conf text.
	Conf string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed
}

// Start writes squid.conf, starts squid -N on a free loopback port and
// waits until it accepts connections. Squid is killed in t.Cleanup.
func Start(t testing.TB, cfg Config) *Squid {
	t.Helper()
	bin := testenv.LookPath(t, "squid", "squid")
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "squid: "+err.Error())
	}
	// The port is chosen by binding :0 and closing; another process can
	// take it in between, so retry a few times on a bind failure.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, cfg)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("squidtest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string, cfg Config) (*Squid, error) {
	t.Helper()
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Squid{
		Addr:   testenv.FreeAddr(t),
		Dir:    dir,
		exited: make(chan struct{}),
	}
	s.Conf = cfg.render(dir, s.Addr, os.Geteuid() == 0)
	if err := s.launch(t, bin); err != nil {
		return nil, err
	}
	dialer := net.Dialer{Timeout: time.Second}
	if err := s.waitListening(dialer.DialContext, s.Addr, cfg.StartTimeout); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// launch writes s.Conf and a hosts file into s.Dir and starts
// "name args... -N -f squid.conf" there in its own process group, so that
// the pinger and other helpers die with it. Squid is killed in t.Cleanup,
// which logs its configuration and logs when the test failed.
func (s *Squid) launch(t testing.TB, name string, args ...string) error {
	t.Helper()
	// Squid resolves nothing: the origin is addressed as 127.0.0.1, and
	// hosts_file answers for localhost.
	if err := os.WriteFile(filepath.Join(s.Dir, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "squid.conf"), []byte(s.Conf), 0o644); err != nil {
		return err
	}
	if err := chownForSquid(s.Dir); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(s.Dir, "squid.out"))
	if err != nil {
		return err
	}
	s.cmd = exec.Command(name, append(args, "-N", "-f", filepath.Join(s.Dir, "squid.conf"))...)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start squid: %w", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("squidtest: squid.conf:\n%s\ncache.log:\n%s\nsquid output:\n%s\naccess.log:\n%s\nicap.log:\n%s", s.Conf, tail(s.CacheLog(), 4000),
				tail(s.readFile("squid.out"), 2000), tail(s.AccessLog(), 2000), tail(s.readFile("icap.log"), 4000))
		}
		s.kill()
	})
	return nil
}

// waitListening dials addr until Squid accepts a connection, and fails
// when Squid exits first or timeout (0 means DefaultStartTimeout) passes.
func (s *Squid) waitListening(dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, timeout time.Duration) error {
	if timeout == 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("squid exited during startup (%v): %s", s.err, tail(s.CacheLog()+s.readFile("squid.out"), 2000))
		case <-ctx.Done():
			return fmt.Errorf("squid did not listen on %s within %v: %s", addr, timeout, tail(s.CacheLog(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// render returns squid.conf for a Squid in dir listening on addr.
func (cfg Config) render(dir, addr string, root bool) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# generated by internal/squidtest")
	p("http_port %s", addr)
	p("pid_filename %s", filepath.Join(dir, "squid.pid"))
	p("cache_log %s", filepath.Join(dir, "cache.log"))
	p("access_log stdio:%s", filepath.Join(dir, "access.log"))
	p("cache_store_log none")
	p("coredump_dir %s", dir)
	if root {
		p("cache_effective_user proxy")
	}
	p("cache deny all")
	p("cache_mem 8 MB")
	p("shutdown_lifetime 0 seconds")
	p("pinger_enable off")
	p("dns_nameservers 127.0.0.1")
	p("hosts_file %s", filepath.Join(dir, "hosts"))
	p("http_access allow localhost")
	p("http_access deny all")
	// buffer-size=0KB: every line reaches the file when it is logged, so
	// tests can poll it.
	icapLog := func() {
		p("logformat icapsvc %s", ICAPLogFormat)
		p("icap_log stdio:%s logformat=icapsvc buffer-size=0KB", filepath.Join(dir, "icap.log"))
	}
	switch {
	case cfg.ICAPConf != "":
		p("# ICAP directives given by the test")
		p("%s", strings.TrimSpace(cfg.ICAPConf))
		icapLog()
	case len(cfg.Services) > 0:
		preview := cfg.PreviewSize
		if preview == 0 {
			preview = DefaultPreviewSize
		}
		p("icap_enable on")
		p("icap_preview_enable %s", onOff(!cfg.NoPreview))
		p("icap_preview_size %d", preview)
		p("icap_persistent_connections on")
		p("icap_206_enable %s", onOff(!cfg.No206))
		p("adaptation_send_client_ip on")
		for _, sv := range cfg.Services {
			p("icap_service %s %s %s bypass=%d", sv.Name, sv.Point, sv.URL, b2i(sv.Bypass))
			p("adaptation_access %s allow all", sv.Name)
		}
		icapLog()
	default:
		p("icap_enable off")
	}
	for _, l := range cfg.Extra {
		p("%s", l)
	}
	return b.String()
}

// Client returns an HTTP client that sends every request through Squid.
// It does not follow redirects and keeps its connections to Squid alive.
func (s *Squid) Client() *http.Client {
	proxy := &url.URL{Scheme: "http", Host: s.Addr}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyURL(proxy),
			DisableCompression:  true,
			MaxIdleConnsPerHost: 4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CacheLog returns the content of Squid's cache.log.
func (s *Squid) CacheLog() string { return s.readFile("cache.log") }

// AccessLog returns the content of Squid's access.log.
func (s *Squid) AccessLog() string { return s.readFile("access.log") }

// Exited is closed when the Squid process has exited.
func (s *Squid) Exited() <-chan struct{} { return s.exited }

// Stop terminates Squid (SIGTERM, then SIGKILL after a few seconds) and
// waits for it, which also flushes its logs.
func (s *Squid) Stop() { s.kill() }

func (s *Squid) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
}

func (s *Squid) readFile(name string) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, name))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// newDir creates Squid's directory. Under root, Squid runs as "proxy", so
// the directory lives in the world-traversable temp dir and belongs to it.
func newDir() (string, error) {
	dir, err := os.MkdirTemp("", "squidtest-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

func chownForSquid(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("proxy")
	if err != nil {
		return fmt.Errorf("squid runs as user proxy under root: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

// FreePort returns a loopback TCP port that was free a moment ago, for
// programs (like squid or c-icap) that cannot be told to bind port 0.
func FreePort(t testing.TB) int {
	t.Helper()
	return testenv.FreePort(t)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
