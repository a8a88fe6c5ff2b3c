package dashboard

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sig3 formats v with three significant digits, without a trailing ".0"
// run: 1.54, 12.3, 256.
func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// FormatBitrate formats a rate given in bytes per second as bits per
// second with an SI prefix: "512 bit/s", "256 kbit/s", "1.54 Mbit/s",
// "10.0 Gbit/s". Negative, NaN and infinite rates give "–".
func FormatBitrate(bytesPerSecond float64) string {
	if bytesPerSecond < 0 || math.IsNaN(bytesPerSecond) || math.IsInf(bytesPerSecond, 0) {
		return "–"
	}
	return siUnit(bytesPerSecond*8, "bit/s")
}

// FormatBytes formats a byte count with an SI prefix: "900 B", "1.50 kB",
// "12.3 MB".
func FormatBytes(n int64) string {
	if n < 0 {
		return "-" + siUnit(-float64(n), "B")
	}
	return siUnit(float64(n), "B")
}

func siUnit(v float64, unit string) string {
	prefixes := []string{"", "k", "M", "G", "T", "P"}
	i := 0
	// Round first, so that 999.96 kbit/s prints as 1.00 Mbit/s, not 1000.
	for i < len(prefixes)-1 && roundSig3(v) >= 1000 {
		v /= 1000
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + " " + unit
	}
	return sig3(v) + " " + prefixes[i] + unit
}

func roundSig3(v float64) float64 {
	if v == 0 {
		return 0
	}
	s, _ := strconv.ParseFloat(sig3(v), 64)
	return s
}

// FormatRTT formats a round-trip time: "0.42 ms", "12.3 ms", "1.20 s";
// zero (not measured) gives "–".
func FormatRTT(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + " ms"
	default:
		return sig3(d.Seconds()) + " s"
	}
}

// FormatAge formats how long ago something happened, coarsely: "now",
// "42 s", "5 min", "3.5 h", "2 d".
func FormatAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return strings.TrimSuffix(strconv.FormatFloat(d.Hours(), 'f', 1, 64), ".0") + " h"
	default:
		return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
}

// FormatCount formats a counter with thin thousands separators:
// "1 234 567".
func FormatCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	out := make([]byte, 0, len(s)+len(s)/3*3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, "\u202f"...) // narrow no-break space
		}
		out = append(out, s[i])
	}
	return string(out)
}

// FormatPercent formats a fraction (0.123) as "12.3 %".
func FormatPercent(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	return sig3(f*100) + "\u202f%"
}
