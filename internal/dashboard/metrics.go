package dashboard

import (
	"bufio"
	"math"
	"strconv"
	"strings"
)

// Metric is one sample of the Prometheus text exposition format.
type Metric struct {
	Name   string  // metric name
	Labels string  // the label set as written, without braces ("" if none)
	Value  float64 // the sample's value
	Help   string  // the family's HELP text
}

// ParseMetrics reads the Prometheus text format as the daemons write it
// (one sample per line, HELP before the samples of its family), so that
// a page can show the counters a daemon already exports without a second
// code path. Lines it does not understand are skipped.
func ParseMetrics(text string) []Metric {
	help := map[string]string{}
	var out []Metric
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, h, _ := strings.Cut(rest, " ")
			help[name] = h
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		m := Metric{Name: series, Value: v}
		if j := strings.IndexByte(series, '{'); j >= 0 && strings.HasSuffix(series, "}") {
			m.Name, m.Labels = series[:j], series[j+1:len(series)-1]
		}
		m.Help = help[m.Name]
		out = append(out, m)
	}
	return out
}

// Find returns the value of the first metric named name with exactly the
// label set labels, and whether there is one.
func Find(ms []Metric, name, labels string) (float64, bool) {
	for _, m := range ms {
		if m.Name == name && m.Labels == labels {
			return m.Value, true
		}
	}
	return 0, false
}

// FormatValue formats a metric value: integers with thousands separators,
// others with three significant digits.
func FormatValue(v float64) string {
	if v >= 0 && v < 1<<53 && v == math.Trunc(v) {
		return FormatCount(uint64(v))
	}
	return sig3(v)
}

// MetricsTable makes a table (meaning, series, value) of the metrics whose
// name starts with one of prefixes, in their order.
func MetricsTable(title string, ms []Metric, prefixes ...string) Table {
	t := Table{Title: title, Columns: []string{"Counter", "Series", "Value"}, Numeric: []bool{false, false, true}}
	for _, m := range ms {
		for _, p := range prefixes {
			if strings.HasPrefix(m.Name, p) {
				series := m.Name
				if m.Labels != "" {
					series += "{" + m.Labels + "}"
				}
				t.Rows = append(t.Rows, []string{m.Help, series, FormatValue(m.Value)})
				break
			}
		}
	}
	return t
}
