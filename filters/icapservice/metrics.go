package icapservice

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgeadapt/edgeadapt/internal/promtext"
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

	earlyMu sync.Mutex
	earlyN  map[string]uint64 // early commits by outcome
}

// early counts an early commit (or a body too large to hold that could
// not be committed early) by outcome. A nil Counters counts nothing.
func (c *Counters) early(outcome string) {
	if c == nil {
		return
	}
	c.earlyMu.Lock()
	if c.earlyN == nil {
		c.earlyN = map[string]uint64{}
	}
	c.earlyN[outcome]++
	c.earlyMu.Unlock()
}

// Early returns the number of early commits with outcome: "adapted",
// OutcomeTooLarge (over EarlyHoldBytes: the original was sent), a
// transcode.Reason... constant or "error" (the original was sent),
// "read-error", or "not-committed" (the body passed unchanged).
func (c *Counters) Early(outcome string) uint64 {
	c.earlyMu.Lock()
	defer c.earlyMu.Unlock()
	return c.earlyN[outcome]
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

// RuleDecisions is the count of one rule's decisions with one action.
type RuleDecisions struct {
	Rule    string // "" when no rule matched
	Action  policy.Action
	Count   uint64 // decisions, skipped ones included
	Skipped uint64 // transcodes not carried out (no-transform, partial, unnamed type)
}

// Snapshot returns the decisions per rule and action, sorted by rule then
// action: the rule hits icapd's admin page shows.
func (c *Counters) Snapshot() []RuleDecisions {
	c.mu.RLock()
	at := map[counterKey]int{} // index in out, by the key without skipped
	var out []RuleDecisions
	for k, n := range c.m {
		base := counterKey{k.rule, k.action, false}
		i, ok := at[base]
		if !ok {
			i = len(out)
			out = append(out, RuleDecisions{Rule: k.rule, Action: k.action})
			at[base] = i
		}
		r := &out[i]
		v := n.Load()
		r.Count += v
		if k.skipped {
			r.Skipped += v
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b RuleDecisions) int {
		if a.Rule != b.Rule {
			return strings.Compare(a.Rule, b.Rule)
		}
		return int(a.Action) - int(b.Action)
	})
	return out
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
	promtext.Header(&b, "icapd_policy_decisions_total", "counter", "Policy decisions by rule (\"\": no rule matched) and action; skipped: a transcode not carried out (no-transform, partial, unnamed type).")
	c.mu.RLock()
	for _, k := range keys {
		fmt.Fprintf(&b, "icapd_policy_decisions_total{rule=%s,action=%q,skipped=\"%t\"} %d\n", labelValue(k.rule), k.action.String(), k.skipped, c.m[k].Load())
	}
	c.mu.RUnlock()
	c.earlyMu.Lock()
	outcomes := make([]string, 0, len(c.earlyN))
	for o := range c.earlyN {
		outcomes = append(outcomes, o)
	}
	slices.Sort(outcomes)
	if len(outcomes) > 0 {
		promtext.Header(&b, "icapd_early_commit_total", "counter", "Transcodes of bodies too large to hold before answering, by outcome: adapted, the reason the original was sent instead, or not-committed (passed unchanged).")
	}
	for _, o := range outcomes {
		fmt.Fprintf(&b, "icapd_early_commit_total{outcome=%s} %d\n", labelValue(o), c.earlyN[o])
	}
	c.earlyMu.Unlock()
	_, err := io.WriteString(w, b.String())
	return err
}

// labelValue quotes a label value as the exposition format wants:
// backslash, double quote and newline escaped.
func labelValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
