package metric

import (
	"math"
	"testing"
)

func TestFigures(t *testing.T) {
	tests := []struct {
		xs                []float64
		jain, median, sum float64
	}{
		{[]float64{1, 1, 1, 1}, 1, 1, 4},
		{[]float64{4, 0, 0, 0}, 0.25, 0, 4},
		{[]float64{3, 1}, 0.8, 2, 4},
		{[]float64{5, 1, 3}, 0.7714285714285715, 3, 9},
	}
	for _, tt := range tests {
		if got := Jain(tt.xs); math.Abs(got-tt.jain) > 1e-12 {
			t.Errorf("Jain(%v) = %v, want %v", tt.xs, got, tt.jain)
		}
		if got := Median(tt.xs); got != tt.median {
			t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.median)
		}
		if got := Sum(tt.xs); got != tt.sum {
			t.Errorf("Sum(%v) = %v, want %v", tt.xs, got, tt.sum)
		}
	}
	if !math.IsNaN(Median(nil)) || Jain(nil) != 0 {
		t.Error("empty input")
	}
}
