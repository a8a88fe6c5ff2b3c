package spand

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// EvalResult holds the two headline figures of the SPAND paper for a replay:
// how often the server could answer at all, and how often its answer was
// within a factor of 2 of what the connection then measured.
type EvalResult struct {
	Requests int // connections whose throughput was predicted (final reports)
	Answered int // of them, predictions some key answered
	Within2x int // of the answered, predictions within a factor of 2

	BySource map[string]int // answered predictions by the key that answered
	ByClass  map[Class]EvalCounts

	// ResponseRate evaluates the response-body rate the same way, over the
	// connections that measured one (request/response traffic): the
	// figure content adaptation uses, free of keep-alive idle time.
	ResponseRate EvalCounts

	// MedianError is the median of |log2(predicted/measured)| over the
	// answered predictions: 0 is perfect, 1 is a factor of 2.
	MedianError float64
}

// EvalCounts are the counts of one class.
type EvalCounts struct {
	Requests, Answered, Within2x int
}

// AnsweredFraction is Answered / Requests.
func (r *EvalResult) AnsweredFraction() float64 { return frac(r.Answered, r.Requests) }

// Within2xFraction is Within2x / Answered: the accuracy of the answers
// given.
func (r *EvalResult) Within2xFraction() float64 { return frac(r.Within2x, r.Answered) }

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Evaluate replays reports in time order through an Aggregator with cfg, as
// SPAND's evaluation does: when a connection starts, its throughput is
// predicted for its remote host and class from the reports of the
// connections that ended before; when it ends, its report is added. The
// clock is the capture's, so half-life and expiry behave as they would
// have live. Periodic reports feed the aggregation but are not predicted.
func Evaluate(reports []Report, cfg Config) EvalResult {
	type event struct {
		t   time.Time
		end bool
		r   *Report
	}
	events := make([]event, 0, 2*len(reports))
	for i := range reports {
		r := &reports[i]
		if !r.Periodic {
			events = append(events, event{r.Start, false, r})
		}
		events = append(events, event{r.End(), true, r})
	}
	// Ends before starts at the same instant: a report is usable from the
	// moment its connection ends.
	slices.SortStableFunc(events, func(a, b event) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		switch {
		case a.end && !b.end:
			return -1
		case !a.end && b.end:
			return 1
		}
		return 0
	})
	var now time.Time
	agg := NewAggregator(cfg)
	agg.SetClock(func() time.Time { return now })
	res := EvalResult{BySource: map[string]int{}, ByClass: map[Class]EvalCounts{}}
	var errs []float64
	for _, e := range events {
		now = e.t
		if e.end {
			agg.Add(*e.r)
			continue
		}
		cc := res.ByClass[e.r.Class]
		res.Requests++
		cc.Requests++
		p := agg.Predict(e.r.Remote, e.r.Class)
		if e.r.ResponseRate > 0 {
			res.ResponseRate.Requests++
			if p.ResponseRate > 0 {
				res.ResponseRate.Answered++
				if within2x(p.ResponseRate, e.r.ResponseRate) {
					res.ResponseRate.Within2x++
				}
			}
		}
		if p.Known() {
			res.Answered++
			cc.Answered++
			res.BySource[p.Source]++
			ratio := p.Throughput / e.r.Throughput
			if within2x(p.Throughput, e.r.Throughput) {
				res.Within2x++
				cc.Within2x++
			}
			if ratio > 0 && !math.IsInf(ratio, 0) {
				errs = append(errs, math.Abs(math.Log2(ratio)))
			} else {
				errs = append(errs, math.Inf(1))
			}
		}
		res.ByClass[e.r.Class] = cc
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		res.MedianError = errs[len(errs)/2]
	}
	return res
}

func within2x(predicted, measured float64) bool {
	r := predicted / measured
	return r >= 0.5 && r <= 2
}

// WriteTable prints the result as a small table for people.
func (r *EvalResult) WriteTable(w io.Writer, name string) {
	fmt.Fprintf(w, "%-28s %8s %8s %9s %9s %10s\n", "capture/class", "requests", "answered", "answered%", "within2x%", "med|log2|")
	row := func(label string, c EvalCounts, medErr string) {
		fmt.Fprintf(w, "%-28s %8d %8d %8.1f%% %8.1f%% %10s\n", label, c.Requests, c.Answered,
			100*frac(c.Answered, c.Requests), 100*frac(c.Within2x, c.Answered), medErr)
	}
	row(name, EvalCounts{r.Requests, r.Answered, r.Within2x}, fmt.Sprintf("%.2f", r.MedianError))
	for _, c := range Classes {
		if cc, ok := r.ByClass[c]; ok {
			row("  "+string(c), cc, "")
		}
	}
	if r.ResponseRate.Requests > 0 {
		row("  response rate", r.ResponseRate, "")
	}
	for _, s := range []string{"host", "local", "prefix"} {
		if n := r.BySource[s]; n > 0 {
			fmt.Fprintf(w, "  answered by %-15s %8d\n", s, n)
		}
	}
}
