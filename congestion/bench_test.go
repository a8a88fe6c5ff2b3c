package congestion_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// The overhead of one send cycle through the manager: Acquire (or
// Request), Notify and Update, on the wall clock. BenchmarkMutexFloor is
// the peer: the least any shared accounting costs (a mutex, a clock read,
// two counters), measured in the same run.

func BenchmarkAcquireNotifyUpdate(b *testing.B) {
	for _, flows := range []int{1, 8, 64} {
		b.Run(flowsName(flows), func(b *testing.B) {
			m := congestion.NewManager(congestion.Config{})
			f := openN(b, m, flows)
			ctx := context.Background()
			sendCycles(b, f, func() (congestion.Grant, error) { return f.Acquire(ctx, mss) })
		})
	}
}

func BenchmarkRequestNotifyUpdate(b *testing.B) {
	m := congestion.NewManager(congestion.Config{})
	f := openN(b, m, 1)
	var g congestion.Grant
	send := func(x congestion.Grant) { g = x }
	sendCycles(b, f, func() (congestion.Grant, error) { return g, f.Request(mss, send) })
}

// sendCycles runs b.N cycles of ask (Acquire or Request), Notify, Update.
func sendCycles(b *testing.B, f *congestion.Flow, ask func() (congestion.Grant, error)) {
	b.ReportAllocs()
	for b.Loop() {
		g, err := ask()
		if err != nil {
			b.Fatal(err)
		}
		f.Notify(g.N)
		f.Update(g.N, 0, congestion.NoCongestion, 10*time.Millisecond)
	}
}

func BenchmarkQuery(b *testing.B) {
	m := congestion.NewManager(congestion.Config{})
	f := openN(b, m, 8)
	f.Notify(mss)
	f.Update(mss, 0, congestion.NoCongestion, 10*time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		f.Query()
	}
}

// BenchmarkParallelMacroflow: GOMAXPROCS goroutines, each with its own
// flow, all in one macroflow (one lock).
func BenchmarkParallelMacroflow(b *testing.B) {
	m := congestion.NewManager(congestion.Config{MaxWindow: 1 << 30})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		f, err := m.Open(congestion.FlowInfo{Dst: host(1)})
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		ctx := context.Background()
		for pb.Next() {
			g, err := f.Acquire(ctx, mss)
			if err != nil {
				b.Error(err)
				return
			}
			f.Notify(g.N)
			f.Update(g.N, 0, congestion.NoCongestion, 10*time.Millisecond)
		}
	})
}

func BenchmarkMutexFloor(b *testing.B) {
	var mu sync.Mutex
	var out, acked int
	var last time.Time
	b.ReportAllocs()
	for b.Loop() {
		for range 3 { // Acquire, Notify, Update each take the lock once
			mu.Lock()
			last = time.Now()
			out += mss
			acked += mss
			mu.Unlock()
		}
	}
	_, _ = last, out+acked
}

func flowsName(n int) string {
	switch n {
	case 1:
		return "flows=1"
	case 8:
		return "flows=8"
	}
	return "flows=64"
}

// openN opens n flows to one host and returns the first.
func openN(b *testing.B, m *congestion.Manager, n int) *congestion.Flow {
	b.Helper()
	var first *congestion.Flow
	for range n {
		f, err := m.Open(congestion.FlowInfo{Dst: host(1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		if first == nil {
			first = f
		}
	}
	return first
}
