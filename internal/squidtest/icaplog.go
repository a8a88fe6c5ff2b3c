package squidtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ICAPLogEntry is one line of Squid's icap_log in ICAPLogFormat.
type ICAPLogEntry struct {
	Time    string // seconds.milliseconds
	Service string // Squid's service name
	Method  string // REQMOD, RESPMOD (OPTIONS fetches are not logged)
	// Outcome is Squid's transaction outcome: ICAP_ECHO (204), ICAP_MOD
	// (200), ICAP_PART_ECHO (206 reusing the original body), ICAP_SAT
	// (request satisfaction), ICAP_ERR_*.
	Outcome string
	// Status is the ICAP status code, 0 when Squid logged "-".
	Status int
	// Millis is the ICAP transaction time.
	Millis int64
	// Sent and Received are bytes sent to and received from the ICAP
	// server, -1 when Squid logged "-".
	Sent, Received int64
	URL            string
	ClientIP       string // X-Client-IP Squid sent, "-" if none
	Line           string // the raw line
}

// ParseICAPLog parses icap_log content written with ICAPLogFormat.
func ParseICAPLog(content string) ([]ICAPLogEntry, error) {
	var out []ICAPLogEntry
	for i, line := range strings.Split(content, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 10 {
			return out, fmt.Errorf("icap_log line %d: %d fields, want 10: %q", i+1, len(f), line)
		}
		e := ICAPLogEntry{Time: f[0], Service: f[1], Method: f[2], Outcome: f[3], URL: f[8], ClientIP: f[9], Line: line}
		e.Status = atoiDash(f[4], 0)
		e.Millis = int64(atoiDash(f[5], -1))
		e.Sent = int64(atoiDash(f[6], -1))
		e.Received = int64(atoiDash(f[7], -1))
		out = append(out, e)
	}
	return out, nil
}

func atoiDash(s string, dash int) int {
	if s == "-" {
		return dash
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return dash
	}
	return n
}

// ICAPLog returns the entries Squid has written to its icap_log so far.
func (s *Squid) ICAPLog() ([]ICAPLogEntry, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, "icap.log"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseICAPLog(string(b))
}

// WaitICAPLog polls the icap_log until done reports true for its entries,
// and returns them; it fails the test after timeout. Squid logs an ICAP
// transaction when it ends, which can be just after the HTTP client got
// the last byte, hence the wait.
func (s *Squid) WaitICAPLog(t testing.TB, timeout time.Duration, done func([]ICAPLogEntry) bool) []ICAPLogEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		e, err := s.ICAPLog()
		if err != nil {
			t.Fatalf("squidtest: %v", err)
		}
		if done(e) {
			return e
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, x := range e {
				lines = append(lines, x.Line)
			}
			t.Fatalf("squidtest: icap_log condition not met within %v; log:\n%s", timeout, strings.Join(lines, "\n"))
		}
		select {
		case <-s.exited:
			t.Fatalf("squidtest: squid exited (%v)", s.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
