package icapservice

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgeadapt/edgeadapt/policy"
)

// Counters counts decisions per rule and action, for icapd's /metrics.
// A message no rule matched counts under rule "". The number of series
// is bounded by the distinct rule names loaded since the start. Safe for
// concurrent use; counting a known series takes a read lock and an atomic
// add.
type Counters struct {
	mu sync.RWMutex
	m  map[counterKey]*atomic.Uint64
}

type counterKey struct {
	rule    string
	action  policy.Action
	skipped bool // a transcode turned into a pass (no-transform, 206, type)
}

func (c *Counters) add(d *policy.Decision) {
	k := counterKey{d.Rule, d.Action, d.Skipped != ""}
	c.mu.RLock()
	n := c.m[k]
	c.mu.RUnlock()
	if n == nil {
		c.mu.Lock()
		if c.m == nil {
			c.m = map[counterKey]*atomic.Uint64{}
		}
		if n = c.m[k]; n == nil {
			n = new(atomic.Uint64)
			c.m[k] = n
		}
		c.mu.Unlock()
	}
	n.Add(1)
}

// Get returns the count of decisions by rule with action.
func (c *Counters) Get(rule string, action policy.Action) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var sum uint64
	for _, skipped := range []bool{false, true} {
		if n := c.m[counterKey{rule, action, skipped}]; n != nil {
			sum += n.Load()
		}
	}
	return sum
}

// WriteMetrics writes the counters in the Prometheus text format:
//
//	icapd_policy_decisions_total{rule="slow-images",action="transcode",skipped="false"} 12
func (c *Counters) WriteMetrics(w io.Writer) error {
	c.mu.RLock()
	keys := make([]counterKey, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	c.mu.RUnlock()
	slices.SortFunc(keys, func(a, b counterKey) int {
		if a.rule != b.rule {
			return strings.Compare(a.rule, b.rule)
		}
		if a.action != b.action {
			return int(a.action) - int(b.action)
		}
		if a.skipped == b.skipped {
			return 0
		}
		if !a.skipped {
			return -1
		}
		return 1
	})
	var b strings.Builder
	b.WriteString("# HELP icapd_policy_decisions_total Policy decisions by rule (\"\": no rule matched) and action; skipped: a transcode not carried out (no-transform, partial, unnamed type).\n")
	b.WriteString("# TYPE icapd_policy_decisions_total counter\n")
	c.mu.RLock()
	for _, k := range keys {
		fmt.Fprintf(&b, "icapd_policy_decisions_total{rule=%s,action=%q,skipped=\"%t\"} %d\n", labelValue(k.rule), k.action.String(), k.skipped, c.m[k].Load())
	}
	c.mu.RUnlock()
	_, err := io.WriteString(w, b.String())
	return err
}

// labelValue quotes a label value as the exposition format wants:
// backslash, double quote and newline escaped.
func labelValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
