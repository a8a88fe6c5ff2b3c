// Package metric holds the figures the congestion tests and experiments
// report: Jain's fairness index, medians and sums. It imports nothing of
// the project, so tests inside package congestion can use it too.
package metric

import (
	"math"
	"slices"
)

// Jain returns Jain's fairness index of xs: 1 when all are equal, 1/n
// when one takes everything, 0 for no data.
func Jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(xs)) * s2)
}

// Median returns the median of xs (NaN for none), leaving xs unsorted.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Sum returns the sum of xs.
func Sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}
