package policy

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// BitRate is a rate in bits per second. In policy.toml it is written as a
// number and a unit: "56kbit", "2Mbit", "1.5Mbit", "100Gbit", "512bit"
// (also "kbps", "kbit/s", ...). Units are decimal (k = 1000) and always
// bits: a bare number is rejected as ambiguous.
type BitRate int64

// ParseBandwidth parses a rate such as "56kbit" or "2Mbit" (see BitRate).
// It is what `icapd explain -bandwidth` accepts.
func ParseBandwidth(s string) (BitRate, error) {
	orig := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" {
		return 0, fmt.Errorf("bandwidth %q: want a number and a unit, e.g. 56kbit or 2Mbit", orig)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bandwidth %q: %w", orig, err)
	}
	unit = strings.TrimSuffix(unit, "/s")
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "ps"), "it") // kbps → kb, kbit → kb
	var mul float64
	switch unit {
	case "b":
		mul = 1
	case "kb":
		mul = 1e3
	case "mb":
		mul = 1e6
	case "gb":
		mul = 1e9
	default:
		return 0, fmt.Errorf("bandwidth %q: unknown unit (want bit, kbit, Mbit or Gbit)", orig)
	}
	r := v * mul
	if r < 1 || r > math.MaxInt64/2 {
		return 0, fmt.Errorf("bandwidth %q: out of range (1bit to 1e18bit)", orig)
	}
	return BitRate(math.Round(r)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler for policy.toml.
func (r *BitRate) UnmarshalText(b []byte) error {
	v, err := ParseBandwidth(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// String formats r with the largest unit that keeps it readable, e.g.
// "256kbit", "1.5Mbit".
func (r BitRate) String() string {
	f := float64(r)
	switch {
	case f >= 1e9:
		return strconv.FormatFloat(f/1e9, 'f', -1, 64) + "Gbit"
	case f >= 1e6:
		return strconv.FormatFloat(f/1e6, 'f', -1, 64) + "Mbit"
	case f >= 1e3:
		return strconv.FormatFloat(f/1e3, 'f', -1, 64) + "kbit"
	}
	return strconv.FormatInt(int64(r), 10) + "bit"
}

// BytesPerSecond converts r to bytes per second, the unit of
// Prediction.Throughput.
func (r BitRate) BytesPerSecond() float64 { return float64(r) / 8 }

// Duration is a time.Duration written as a Go duration string ("300ms",
// "10m") in policy.toml.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q: must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// Prediction is what is known about a client's network path, as measured
// passively (spand): its throughput, round-trip time, how many reports
// the figure rests on and how old the newest of them is.
type Prediction struct {
	Throughput float64       // bytes per second
	RTT        time.Duration // smoothed round-trip time; 0 if unknown
	Reports    int           // reports aggregated into this prediction
	Age        time.Duration // age of the newest report
}

// Predictor answers "how fast is this client?" for a client address. The
// spand client implements it; StaticPredictor is a fixed table.
// Implementations must be safe for concurrent use and should answer
// quickly: Decide calls Predict at most once per message, and only when
// a rule needs the client's bandwidth.
type Predictor interface {
	Predict(ctx context.Context, addr netip.Addr) (Prediction, bool)
}

// StaticPredictor answers from a fixed table of prefixes, the longest
// match first, then Default when it is non-nil. It is safe for concurrent
// use once built.
type StaticPredictor struct {
	Prefixes map[netip.Prefix]Prediction
	Default  *Prediction
}

// Predict implements Predictor.
func (s *StaticPredictor) Predict(_ context.Context, addr netip.Addr) (Prediction, bool) {
	if s == nil {
		return Prediction{}, false
	}
	if addr.IsValid() {
		addr = addr.Unmap()
		best, found := -1, Prediction{}
		for p, v := range s.Prefixes {
			if p.Bits() > best && p.Contains(addr) {
				best, found = p.Bits(), v
			}
		}
		if best >= 0 {
			return found, true
		}
	}
	if s.Default != nil {
		return *s.Default, true
	}
	return Prediction{}, false
}

// FixedPredictor predicts the same rate (and no RTT) for every client; it
// is what `icapd explain -bandwidth 56kbit` uses. Its prediction is
// fresh and rests on enough reports to pass any min_reports.
func FixedPredictor(r BitRate) Predictor {
	return &StaticPredictor{Default: &Prediction{Throughput: r.BytesPerSecond(), Reports: math.MaxInt32}}
}

// ClassUnknown is the bandwidth class of a client nothing is known about.
const ClassUnknown = "unknown"

// class is one bandwidth class: rates strictly below below (0: no bound).
type class struct {
	name  string
	below BitRate
}

// defaultClasses apply when policy.toml defines none.
var defaultClasses = []class{{"slow", 512_000}, {"medium", 2_000_000}, {"fast", 0}}

// ECT values of the Network Information API with the rate and RTT the
// specification gives for each (the 4g figures are a representative fast
// link, since the specification bounds 4g only from below).
var ectTable = map[string]struct {
	rate BitRate
	rtt  time.Duration
}{
	"slow-2g": {50_000, 2000 * time.Millisecond},
	"2g":      {70_000, 1400 * time.Millisecond},
	"3g":      {700_000, 270 * time.Millisecond},
	"4g":      {10_000_000, 100 * time.Millisecond},
}

// Sources of a NetInfo.
const (
	SourceSaveData   = "Save-Data"
	SourceHints      = "client hints"
	SourcePrediction = "prediction"
	SourceNone       = "none"
)

// NetInfo is what the policy concluded about the client's network.
type NetInfo struct {
	Class      string        // bandwidth class, or ClassUnknown
	Throughput BitRate       // 0 when unknown
	RTT        time.Duration // 0 when unknown
	Source     string        // which input decided the class: Source...
}

// hintHeaders are the request headers classify reads, in the order it
// reads them; Vary names all of them, because a different value of any of
// them may change the class.
var hintHeaders = []string{"Save-Data", "Downlink", "RTT", "ECT"}

// classify computes the client's NetInfo from, in order: Save-Data, the
// Downlink/RTT/ECT client hints, the predictor's figure for the client
// address; else the class is unknown.
func (p *Policy) classify(ctx context.Context, m *Message, pred Predictor) NetInfo {
	var ni NetInfo
	if p.hints {
		h := m.Header
		if saveDataOn(h.Get("Save-Data")) {
			ni.Class, ni.Source = p.saveData, SourceSaveData
		}
		if v := h.Get("Downlink"); v != "" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f > 0 && f < 1e6 {
				ni.Throughput = BitRate(f * 1e6)
			}
		}
		if v := h.Get("RTT"); v != "" {
			if ms, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				ni.RTT = time.Duration(ms) * time.Millisecond
			}
		}
		if e, ok := ectTable[strings.ToLower(strings.TrimSpace(h.Get("ECT")))]; ok {
			if ni.Throughput == 0 {
				ni.Throughput = e.rate
			}
			if ni.RTT == 0 {
				ni.RTT = e.rtt
			}
		}
		if ni.Source == "" && ni.Throughput > 0 {
			ni.Source = SourceHints
		}
	}
	if (ni.Throughput == 0 || ni.RTT == 0) && pred != nil && m.ClientIP.IsValid() {
		if pr, ok := pred.Predict(ctx, m.ClientIP); ok && p.trust(pr) {
			if ni.Throughput == 0 && pr.Throughput > 0 {
				ni.Throughput = BitRate(pr.Throughput * 8)
				if ni.Source == "" {
					ni.Source = SourcePrediction
				}
			}
			if ni.RTT == 0 {
				ni.RTT = pr.RTT
			}
		}
	}
	if ni.Source == "" {
		ni.Class, ni.Source = ClassUnknown, SourceNone
	}
	if ni.Class == "" {
		ni.Class = p.classOf(ni.Throughput)
	}
	return ni
}

func (p *Policy) trust(pr Prediction) bool {
	if pr.Reports < p.minReports {
		return false
	}
	return p.maxAge == 0 || pr.Age <= p.maxAge
}

func (p *Policy) classOf(r BitRate) string {
	for _, c := range p.classes {
		if c.below == 0 || r < c.below {
			return c.name
		}
	}
	return ClassUnknown // unreachable: the last class is unbounded
}

// saveDataOn reports whether a Save-Data value asks for reduced data
// ("on", case-insensitive, possibly with parameters).
func saveDataOn(v string) bool {
	if v == "" {
		return false
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "on")
}
