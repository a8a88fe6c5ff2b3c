package adapt_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/spand"
)

// The proxy's predictor: the client's live macroflow first, then the
// measurement store. Here the manager has no macroflow for the client
// yet, so the store's reports answer.
func ExampleChain() {
	store, _ := spand.NewMemoryStore(spand.Config{}, "")
	client, proxy := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.1")
	for range 2 {
		store.Add(context.Background(), []spand.Report{{
			Local: client, Remote: proxy, Class: spand.ClassWeb,
			Start: time.Now().Add(-5 * time.Second), Duration: 4, Bytes: 100_000, Throughput: 25_000,
		}})
	}
	pred := adapt.Chain{
		&adapt.CM{Manager: congestion.NewManager(congestion.Config{})},
		&adapt.Spand{Source: store},
	}
	p, ok := pred.Predict(context.Background(), client)
	fmt.Printf("%t: %.0f kbit/s from %d reports\n", ok, p.Throughput*8/1000, p.Reports)
	// Output:
	// true: 200 kbit/s from 2 reports
}
