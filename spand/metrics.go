package spand

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/edgeadapt/edgeadapt/internal/promtext"
)

// The Prometheus text exposition format (version 0.0.4) is written by hand:
// a dozen counters do not justify client_golang's dependency tree in a
// package icapd imports.

// writeMetric writes one metric family with HELP and TYPE lines. values maps
// a label set (already formatted, e.g. `kind="host"`, or "" for none) to
// the value.
func writeMetric(w io.Writer, name, typ, help string, values map[string]float64) {
	promtext.Header(w, name, typ, help)
	labels := make([]string, 0, len(values))
	for l := range values {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		if l == "" {
			fmt.Fprintf(w, "%s %v\n", name, values[l])
		} else {
			fmt.Fprintf(w, "%s{%s} %v\n", name, l, values[l])
		}
	}
}

// WriteMetrics writes the aggregator's counters in the Prometheus text
// format.
func (a *Aggregator) WriteMetrics(w io.Writer) {
	st := a.Stats()
	keys, evicted, expired := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for k := KindHost; k < numKinds; k++ {
		l := `table="` + k.String() + `"`
		keys[l] = float64(st.Keys[k])
		evicted[l] = float64(st.Evicted[k])
		expired[l] = float64(st.Expired[k])
	}
	writeMetric(w, "spand_aggregated_reports_total", "counter", "Reports aggregated.", map[string]float64{"": float64(st.Reports)})
	writeMetric(w, "spand_stale_reports_total", "counter", "Reports dropped as older than the maximum age.", map[string]float64{"": float64(st.Stale)})
	writeMetric(w, "spand_keys", "gauge", "Keys held per table.", keys)
	writeMetric(w, "spand_keys_evicted_total", "counter", "Keys evicted because a table was full.", evicted)
	writeMetric(w, "spand_keys_expired_total", "counter", "Keys expired because their newest report was too old.", expired)
	writeMetric(w, "spand_samples", "gauge", "Report samples held in all tables.", map[string]float64{"": float64(st.Samples)})
}

// counterVec is a set of counters keyed by a formatted label set.
type counterVec struct {
	mu sync.Mutex
	m  map[string]float64
}

func (c *counterVec) add(labels string, v float64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]float64)
	}
	c.m[labels] += v
	c.mu.Unlock()
}

func (c *counterVec) snapshot() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]float64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// label formats name="value" with the value escaped as the format asks.
func label(name, value string) string {
	return name + `="` + labelEscaper.Replace(value) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
