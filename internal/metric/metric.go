package metric

import (
	"cmp"
	"slices"
)

// Median returns the median of xs, the mean of the middle two for an even
// count, and 0 for none. xs is left as it was.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// Percentile returns the nearest-rank p-quantile (p in 0..1) of sorted,
// which must be in ascending order: the smallest value with at least a
// fraction p of the values at or below it. It returns the zero value for
// an empty slice.
func Percentile[T cmp.Ordered](sorted []T, p float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	// The small epsilon keeps ranks such as 100*0.99 from rounding up to
	// the next one through floating-point error.
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
