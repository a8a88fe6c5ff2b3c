package systest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/squidtest"
)

// squidOutcomes counts the result codes of Squid's access.log (e.g.
// TCP_MISS/200) for requests that ended before until, and returns the
// lines of those that are not TCP_MISS/200. Requests ended at or after
// until (a load generator stopping mid-request) are left out.
func squidOutcomes(sq *squidtest.Squid, until time.Time) (counts map[string]int, odd []string) {
	counts = map[string]int{}
	for _, line := range strings.Split(sq.AccessLog(), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		if err != nil || time.Unix(0, int64(sec*1e9)).After(until) {
			continue
		}
		counts[f[3]]++
		if f[3] != "TCP_MISS/200" && len(odd) < 20 {
			odd = append(odd, line)
		}
	}
	return counts, odd
}

// icapErrors returns the icap_log lines whose outcome is an ICAP_ERR_*.
func icapErrors(sq *squidtest.Squid) []string {
	entries, err := sq.ICAPLog()
	if err != nil {
		return []string{fmt.Sprintf("icap_log: %v", err)}
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Outcome, "ICAP_ERR") && len(out) < 20 {
			out = append(out, e.Line)
		}
	}
	return out
}
