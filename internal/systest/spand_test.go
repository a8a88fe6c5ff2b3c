package systest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeadapt/edgeadapt/internal/squidtest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/redisstore"
)

// spandProc is a running cmd/spand -serve.
type spandProc struct {
	*proc
	url string
}

var spandListening = regexp.MustCompile(`performance server listening addr=(\S+)`)

func startSpand(t testing.TB, args ...string) *spandProc {
	t.Helper()
	p, m := startProc(t, "spand", buildBinary(t, "spand"), spandListening, append([]string{"-serve", "127.0.0.1:0"}, args...)...)
	return &spandProc{proc: p, url: "http://" + m[1]}
}

// reports makes n reports of web transfers from 10.0.0.7 to distinct
// remote hosts 192.0.2.(first+i) (one key per report), ended a second
// ago, with throughput 10000*(first+i) bytes/s.
func reports(first, n int) []spand.Report {
	var out []spand.Report
	for i := first; i < first+n; i++ {
		out = append(out, spand.Report{
			Local: netip.MustParseAddr("10.0.0.7"), Remote: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			Class: spand.ClassWeb, Start: time.Now().Add(-3 * time.Second), Duration: 2,
			Bytes: int64(20000 * i), Throughput: float64(10000 * i), RTTMin: 30, RTTMedian: 35,
		})
	}
	return out
}

// post sends reports and returns how many spand accepted; any status but
// 200 fails the test.
func (s *spandProc) post(t testing.TB, rs []spand.Report) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{"reports": rs})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.url+"/v1/reports", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Accepted int }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/reports: %d, %v", resp.StatusCode, err)
	}
	return got.Accepted
}

// predict asks spand about addr (class web) and how long it took.
func (s *spandProc) predict(t testing.TB, addr string) (spand.Prediction, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, body := testenv.Get(t, http.DefaultClient, s.url+"/v1/predict?addr="+addr+"&class=web", nil)
	took := time.Since(start)
	var p spand.Prediction
	if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("predict %s: %d %s (%v)", addr, resp.StatusCode, body, err)
	}
	return p, took
}

func (s *spandProc) metric(t testing.TB, name string) float64 {
	t.Helper()
	return sum(scrape(t, s.url+"/metrics"), name)
}

// TestSpandSnapshot runs spand with -snapshot: what it learned survives a
// clean restart (SIGTERM writes the snapshot) and a crash (SIGKILL after
// a periodic snapshot), with the same predictions.
func TestSpandSnapshot(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "spand.json")
	args := []string{"-snapshot", snap, "-snapshot-every", "200ms"}
	s := startSpand(t, args...)
	if n := s.post(t, reports(1, 5)); n != 5 {
		t.Fatalf("accepted %d of 5", n)
	}
	want := map[string]spand.Prediction{}
	for i := 1; i <= 5; i++ {
		addr := fmt.Sprintf("192.0.2.%d", i)
		want[addr], _ = s.predict(t, addr)
		if want[addr].Source != "host" || want[addr].Reports != 1 {
			t.Fatalf("before the restart, %s: %+v", addr, want[addr])
		}
	}
	check := func(when string) string {
		t.Helper()
		kept := 0
		for addr, w := range want {
			got, _ := s.predict(t, addr)
			if got.Source != w.Source || got.Reports != w.Reports || got.Throughput != w.Throughput || got.RTT != w.RTT {
				t.Errorf("%s, %s: %+v, want %+v", when, addr, got, w)
				continue
			}
			kept++
		}
		return fmt.Sprintf("%d of %d", kept, len(want))
	}

	s.signal(t, syscall.SIGTERM)
	if status := s.wait(t, 30*time.Second); status != 0 {
		t.Fatalf("spand exited with %d after SIGTERM", status)
	}
	s = startSpand(t, args...)
	afterTerm := check("after SIGTERM and restart")

	// A crash loses only what came after the last periodic snapshot:
	// wait for two saves after the report, then SIGKILL.
	if n := s.post(t, reports(6, 1)); n != 1 {
		t.Fatalf("accepted %d of 1", n)
	}
	want["192.0.2.6"], _ = s.predict(t, "192.0.2.6")
	saves := s.metric(t, "spand_snapshot_saves_total")
	testenv.Poll(t, 30*time.Second, "two periodic snapshots", func() bool { return s.metric(t, "spand_snapshot_saves_total") >= saves+2 })
	s.signal(t, syscall.SIGKILL)
	s.wait(t, 10*time.Second)
	s = startSpand(t, args...)
	afterKill := check("after SIGKILL and restart")
	figure(t, "predictions kept across a SIGTERM / a SIGKILL restart", "%s / %s", afterTerm, afterKill)
}

// redisServer is a redis-server with an append-only file fsynced on every
// write, so that a stop and a start on the same port and directory keep
// every write it acknowledged (redistest's servers start empty).
type redisServer struct {
	addr, dir string
	cmd       *exec.Cmd
	exited    chan struct{}
}

func startRedis(t *testing.T, addr, dir string) *redisServer {
	t.Helper()
	bin := testenv.LookPath(t, "redis-server", "redis-server")
	host, port, _ := netSplit(addr)
	r := &redisServer{addr: addr, dir: dir, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "--port", port, "--bind", host, "--dir", dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--loglevel", "warning")
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.exited })
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	testenv.Poll(t, 20*time.Second, "redis-server answers PING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
	return r
}

// stop ends redis-server with SIGTERM and waits for it.
func (r *redisServer) stop(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("redis-server did not stop")
	}
}

func netSplit(addr string) (host, port string, err error) {
	ap, err := netip.ParseAddrPort(addr)
	return ap.Addr().String(), strconv.Itoa(int(ap.Port())), err
}

// TestSpandRedisRestart runs spand with -redis, stops Redis during
// operation and starts it again: spand accepts reports and answers
// predictions from memory meanwhile (for hosts reported before and
// during the outage), reconnects, and every report it accepted is then
// in Redis, once.
func TestSpandRedisRestart(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", squidtest.FreePort(t))
	dir := t.TempDir()
	rs := startRedis(t, addr, dir)
	s := startSpand(t, "-redis", addr)
	var accepted []spand.Report
	postAll := func(batch []spand.Report) {
		t.Helper()
		if n := s.post(t, batch); n != len(batch) {
			t.Fatalf("accepted %d of %d", n, len(batch))
		}
		accepted = append(accepted, batch...)
	}
	pendingZero := func(what string) time.Duration {
		return testenv.Poll(t, 60*time.Second, what, func() bool {
			return s.metric(t, "spand_redis_pending") == 0 && s.metric(t, "spand_redis_written_total") == float64(len(accepted))
		})
	}

	postAll(reports(1, 10))
	pendingZero("the first reports written to Redis")
	if p, _ := s.predict(t, "192.0.2.3"); p.Source != "host" || p.Throughput != 30000 {
		t.Fatalf("prediction from Redis: %+v", p)
	}

	rs.stop(t)
	postAll(reports(11, 10))
	var slowest time.Duration
	for _, a := range []string{"192.0.2.3", "192.0.2.15"} {
		p, took := s.predict(t, a)
		slowest = max(slowest, took)
		if p.Source != "host" || p.Reports != 1 {
			t.Errorf("Redis down: prediction for %s: %+v, want one from memory", a, p)
		}
	}
	if n := s.metric(t, "spand_redis_pending"); n != 10 {
		t.Errorf("Redis down: %v reports pending, want 10", n)
	}
	testenv.Poll(t, 30*time.Second, "a failed write counted", func() bool { return s.metric(t, "spand_redis_errors_total") > 0 })
	fallbacks := s.metric(t, "spand_redis_fallbacks_total")

	startRedis(t, addr, dir) // same port and directory: the append-only file is read back
	reconnect := pendingZero("the queued reports written after Redis restarted")
	postAll(reports(21, 5))
	pendingZero("the reports after the restart written")

	// Every accepted report is in Redis, exactly once: each has its own
	// remote host, so its host key holds one sample.
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	cfg := spand.Config{}.WithDefaults()
	missing := 0
	for i := range accepted {
		k := cfg.Keys(&accepted[i])[0]
		n, err := c.LLen(context.Background(), redisstore.DefaultPrefix+"k:"+k.String()).Result()
		if err != nil || n != 1 {
			missing++
			t.Errorf("report for %v: %d samples in Redis (%v), want 1", accepted[i].Remote, n, err)
		}
	}
	if p, _ := s.predict(t, "192.0.2.15"); p.Source != "host" || p.Throughput != 150000 {
		t.Errorf("prediction for a host reported while Redis was down, after the restart: %+v", p)
	}
	figure(t, "reports accepted / in Redis after its restart", "%d / %d (10 of them while Redis was down)", len(accepted), len(accepted)-missing)
	figure(t, "predictions while Redis was down", "answered from memory, slowest %v (%v fallbacks)", slowest.Round(time.Millisecond), fallbacks)
	figure(t, "Redis answering again to queue written", "%v", reconnect.Round(time.Millisecond))
}
