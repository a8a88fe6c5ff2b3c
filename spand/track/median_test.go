package track

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSelectNthMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n++ {
		for _, spread := range []uint32{3, 1000, 1 << 31} {
			a := make([]uint32, n)
			for i := range a {
				a[i] = r.Uint32() % spread
			}
			sorted := slices.Sorted(slices.Values(a))
			m := samples{buf: a}
			want := sorted[n/2]
			if n%2 == 0 {
				want = uint32((uint64(sorted[n/2-1]) + uint64(sorted[n/2])) / 2)
			}
			if got := m.median(); got != want {
				t.Fatalf("n=%d spread=%d: median %d, want %d", n, spread, got, want)
			}
		}
	}
}
