package spand

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
)

// appendPredictionJSON appends p as encoding/json's Encoder writes it
// (same fields, order, number formats and trailing newline), without
// reflection: GET /v1/predict is the server's hot path. Strings that
// would need escaping (none of the addresses, classes and sources the
// server makes do) go through encoding/json. TestPredictionJSON checks
// the two agree.
func appendPredictionJSON(b []byte, p *Prediction) []byte {
	if !jsonSafe(string(p.Class)) || !jsonSafe(p.Source) || !jsonSafe(p.Key) {
		out, err := json.Marshal(p)
		if err != nil { // no float in a Prediction is NaN or infinite
			return b
		}
		return append(append(b, out...), '\n')
	}
	b = append(b, '{')
	if p.Addr.IsValid() {
		b = append(b, `"addr":"`...)
		b = p.Addr.AppendTo(b)
		b = append(b, `",`...)
	}
	b = append(b, `"class":"`...)
	b = append(b, p.Class...)
	b = append(b, `","source":"`...)
	b = append(b, p.Source...)
	b = append(b, '"')
	if p.Key != "" {
		b = append(b, `,"key":"`...)
		b = append(b, p.Key...)
		b = append(b, '"')
	}
	f := func(name string, v float64) {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = appendJSONFloat(b, v)
	}
	f("throughput", p.Throughput)
	f("throughput_p25", p.ThroughputP25)
	f("throughput_p75", p.ThroughputP75)
	f("rtt_ms", p.RTT)
	f("rtt_min_ms", p.RTTMin)
	f("loss", p.Loss)
	if p.ResponseTime != 0 {
		f("response_time_ms", p.ResponseTime)
	}
	if p.ResponseRate != 0 {
		f("response_rate", p.ResponseRate)
	}
	b = append(b, `,"reports":`...)
	b = strconv.AppendInt(b, int64(p.Reports), 10)
	f("weight", p.Weight)
	f("age_s", p.Age)
	return append(b, '}', '\n')
}

// jsonSafe reports whether s is written by encoding/json as it is:
// printable ASCII without quotes, backslashes or the HTML characters the
// Encoder escapes.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendJSONFloat formats a finite float64 as encoding/json does: the
// shortest representation, in exponent form below 1e-6 and from 1e21,
// with a two-digit negative exponent shortened ("1e-07" -> "1e-7").
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// jsonBufs are the buffers of GET /v1/predict answers.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
