package systest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// wrkResult is what testdata/mix.lua prints at the end of a wrk run.
type wrkResult struct {
	Requests, Bytes, Non2xx               int64
	Connect, Read, Write, Status, Timeout int64
	Duration                              time.Duration
	P50, P90, P99, Max                    time.Duration
	Output                                string // wrk's whole output
}

// Errors is the number of requests that failed in any way wrk sees.
func (r wrkResult) Errors() int64 {
	return r.Non2xx + r.Connect + r.Read + r.Write + r.Status + r.Timeout
}

// parseWrk reads the "SYSTEST key=value..." line of mix.lua's done().
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{Output: out}
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, "SYSTEST ")
		if !ok {
			continue
		}
		seen := 0
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk output %q: %s: %w", line, k, err)
			}
			us := time.Duration(n) * time.Microsecond
			p := map[string]*int64{"requests": &r.Requests, "bytes": &r.Bytes, "non2xx": &r.Non2xx,
				"connect": &r.Connect, "read": &r.Read, "write": &r.Write, "status": &r.Status, "timeout": &r.Timeout}[k]
			d := map[string]*time.Duration{"duration_us": &r.Duration, "p50_us": &r.P50, "p90_us": &r.P90, "p99_us": &r.P99, "max_us": &r.Max}[k]
			switch {
			case p != nil:
				*p = n
			case d != nil:
				*d = us
			default:
				return r, fmt.Errorf("wrk output %q: unknown field %q", line, k)
			}
			seen++
		}
		if seen != 13 {
			return r, fmt.Errorf("wrk output %q: %d fields, want 13", line, seen)
		}
		return r, nil
	}
	return r, fmt.Errorf("wrk output has no SYSTEST line:\n%s", out)
}

// wrkMix is one entry of the rotation: a path of the origin and at most
// one request header.
type wrkMix struct{ Path, Header string }

// runWrk runs wrk against Squid at squidAddr for d with conns
// connections, asking for the mix's URLs on origin (http://host:port).
func runWrk(ctx context.Context, t testing.TB, squidAddr, origin string, mix []wrkMix, conns int, d time.Duration) (wrkResult, error) {
	t.Helper()
	bin := testenv.LookPath(t, "wrk", "wrk")
	script, err := filepath.Abs(filepath.Join("testdata", "mix.lua"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range mix {
		lines = append(lines, strings.TrimSpace(m.Path+" "+m.Header))
	}
	cmd := exec.CommandContext(ctx, bin, "-t", "2", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "60s", "--latency", "-s", script, "http://"+squidAddr+"/")
	cmd.Env = append(os.Environ(), "SYSTEST_ORIGIN="+origin, "SYSTEST_MIX="+strings.Join(lines, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{Output: string(out)}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out))
}

func TestParseWrk(t *testing.T) {
	out, err := os.ReadFile(filepath.Join("testdata", "wrk.out"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 5230, Bytes: 412345678, Non2xx: 2, Connect: 0, Read: 1, Write: 0, Status: 2, Timeout: 0,
		Duration: 20016345 * time.Microsecond, P50: 123456 * time.Microsecond, P90: 400000 * time.Microsecond,
		P99: 1500000 * time.Microsecond, Max: 2100000 * time.Microsecond}
	r.Output = ""
	if r != want {
		t.Errorf("parseWrk = %+v\nwant %+v", r, want)
	}
	if r.Errors() != 5 {
		t.Errorf("Errors() = %d, want 5", r.Errors())
	}
	for _, bad := range []string{"no line", "SYSTEST requests=x", "SYSTEST requests=1 nope=2"} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk(%q): no error", bad)
		}
	}
}
