package spand

import (
	"strings"
	"testing"
	"time"
)

func TestEvaluate(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	at := func(start, dur time.Duration, remote string, thr float64) Report {
		r := rep("10.0.0.5", remote, ClassBulk, t0.Add(start+dur), thr)
		r.Start, r.Duration = t0.Add(start), dur.Seconds()
		return r
	}
	reports := []Report{
		at(0, 10*time.Second, "192.0.2.1", 1000),              // nothing known yet: unanswered
		at(5*time.Second, 10*time.Second, "192.0.2.1", 1500),  // starts before the first ends: unanswered
		at(20*time.Second, time.Second, "192.0.2.1", 1800),    // median of 1000,1500 -> 1000: within 2x
		at(30*time.Second, time.Second, "192.0.2.1", 9000),    // predicted ~1500: off by more than 2x
		at(40*time.Second, time.Second, "192.0.2.77", 1600),   // new host, same /24: prefix answers
		at(11*time.Second, 5*time.Second, "198.51.100.9", 50), // other network: unanswered
	}
	p := at(50*time.Second, time.Second, "192.0.2.1", 1)
	p.Periodic = true // feeds the aggregate, is not predicted itself
	reports = append(reports, p)

	res := Evaluate(reports, Config{HalfLife: time.Hour})
	if res.Requests != 6 || res.Answered != 3 || res.Within2x != 2 {
		t.Fatalf("requests/answered/within2x = %d/%d/%d, want 6/3/2", res.Requests, res.Answered, res.Within2x)
	}
	if res.BySource["host"] != 2 || res.BySource["prefix"] != 1 {
		t.Fatalf("by source %v, want host 2, prefix 1", res.BySource)
	}
	if f := res.AnsweredFraction(); f != 0.5 {
		t.Fatalf("answered fraction %v", f)
	}
	var b strings.Builder
	res.WriteTable(&b, "synthetic")
	if !strings.Contains(b.String(), "synthetic") || !strings.Contains(b.String(), "50.0%") || !strings.Contains(b.String(), "66.7%") {
		t.Fatalf("table:\n%s", b.String())
	}

	// With a maximum age shorter than the gaps, nothing answers: the
	// replay's clock is the capture's.
	if res := Evaluate(reports, Config{MaxAge: time.Second}); res.Answered != 0 {
		t.Fatalf("answered %d with 1 s MaxAge", res.Answered)
	}
}

func TestEvaluateResponseRate(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var reports []Report
	for i, rr := range []float64{1000, 1500, 5000} {
		r := rep("10.0.0.5", "192.0.2.1", ClassWeb, t0.Add(time.Duration(i+1)*time.Minute), 100)
		r.ResponseRate = rr
		reports = append(reports, r)
	}
	res := Evaluate(reports, Config{})
	// First: nothing known. Second: 1000 predicted for 1500. Third: 1000
	// or 1500 predicted for 5000, off by more than 2x.
	if got := res.ResponseRate; got != (EvalCounts{3, 2, 1}) {
		t.Fatalf("response rate counts %+v, want {3 2 1}", got)
	}
}
