package congestion_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// TestConcurrentFlows hammers one manager from many goroutines on the wall
// clock (run it with -race): flows acquire, send, decline, report losses,
// query, subscribe, move between macroflows, cancel and crash (a grant
// never notified), and close. Afterwards every macroflow must be back to
// nothing outstanding, granted or waiting.
func TestConcurrentFlows(t *testing.T) {
	m := congestion.NewManager(congestion.Config{GrantTimeout: 5 * time.Millisecond, MaxGrant: 8 * mss})
	const hosts, perHost, iters = 3, 6, 300
	var wg sync.WaitGroup
	var granted, notices atomic.Int64
	errc := make(chan error, hosts*perHost)
	for h := range hosts {
		for i := range perHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(h), uint64(i)))
				f, err := m.Open(congestion.FlowInfo{Dst: host(h), Weight: 1 + i%3, Priority: i % 2})
				if err != nil {
					errc <- err
					return
				}
				defer f.Close()
				f.Subscribe(congestion.Thresholds{}, func(congestion.Status) {
					f.Query() // callbacks run without the manager's locks
					notices.Add(1)
				})
				for it := range iters {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					if rng.IntN(20) == 0 {
						cancel() // an already cancelled acquire
					}
					g, err := f.Acquire(ctx, 1+rng.IntN(6*mss))
					cancel()
					if errors.Is(err, context.Canceled) {
						continue
					}
					if err != nil {
						errc <- fmt.Errorf("host %d flow %d iter %d: %w", h, i, it, err)
						return
					}
					granted.Add(int64(g.N))
					switch r := rng.IntN(40); {
					case r == 0:
						// Crash: never notify; the grant must expire.
						waitUntil := time.Now().Add(10 * time.Second)
						for f.Request(1, func(congestion.Grant) {}) != nil {
							if time.Now().After(waitUntil) {
								errc <- fmt.Errorf("host %d flow %d: grant never expired", h, i)
								return
							}
							time.Sleep(time.Millisecond)
						}
						if !f.CancelRequest() {
							f.Notify(0)
						}
					case r == 1:
						f.Notify(0) // decline
					case r == 2:
						f.Notify(g.N)
						f.Update(g.N/2, g.N-g.N/2, congestion.LossFeedback, time.Duration(1+rng.IntN(5))*time.Millisecond)
					case r == 3 && i == 0:
						f.Notify(g.N)
						f.Update(g.N, 0, congestion.NoCongestion, time.Millisecond)
						if err := f.SetMacroflow(fmt.Sprintf("moved-%d", rng.IntN(2))); err != nil {
							errc <- err
							return
						}
					default:
						f.Notify(g.N)
						f.Update(g.N, 0, congestion.NoCongestion, time.Duration(1+rng.IntN(5))*time.Millisecond)
					}
					if it%50 == 0 {
						f.Query()
						f.Macroflow().Stats()
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	keys := []string{"moved-0", "moved-1"}
	for h := range hosts {
		keys = append(keys, host(h).Addr().String()+"/32")
	}
	for _, k := range keys {
		mf := m.Macroflow(k)
		if mf == nil {
			continue
		}
		if s := mf.Stats(); s.Flows != 0 || s.Outstanding != 0 || s.Granted != 0 || s.Waiting != 0 {
			t.Errorf("macroflow %s after all closed: %+v", k, s)
		}
	}
	if granted.Load() == 0 || notices.Load() == 0 {
		t.Errorf("granted %d bytes, %d notices: nothing happened", granted.Load(), notices.Load())
	}
	t.Logf("granted %d bytes, %d rate notices", granted.Load(), notices.Load())
}
