package spand_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/edgeadapt/edgeadapt/spand"
)

func ExampleAggregator_Predict() {
	agg := spand.NewAggregator(spand.Config{HalfLife: 10 * time.Minute})
	now := time.Now()
	for _, thr := range []float64{400e3, 500e3, 450e3} {
		agg.Add(spand.Report{
			Local: netip.MustParseAddr("10.0.0.7"), Remote: netip.MustParseAddr("192.0.2.80"),
			Class: spand.ClassWeb, Start: now.Add(-time.Second), Duration: 1,
			Bytes: int64(thr), Throughput: thr, RTTMin: 30, RTTMedian: 35,
		})
	}
	// A host never seen in the same /24: the prefix answers.
	p := agg.Predict(netip.MustParseAddr("192.0.2.81"), spand.ClassWeb)
	fmt.Printf("%s %s: %.0f kB/s (%.0f..%.0f) from %d reports, RTT %.0f ms\n",
		p.Source, p.Key, p.Throughput/1e3, p.ThroughputP25/1e3, p.ThroughputP75/1e3, p.Reports, p.RTT)
	// Output: prefix 192.0.2.0/24: 450 kB/s (400..500) from 3 reports, RTT 35 ms
}

func ExampleClient_Predict() {
	store, _ := spand.NewMemoryStore(spand.Config{}, "")
	ts := httptest.NewServer(&spand.Server{Store: store, Logger: slog.New(slog.DiscardHandler)})
	defer ts.Close()

	c := &spand.Client{BaseURL: ts.URL}
	ctx := context.Background()
	c.Report(ctx, []spand.Report{{
		Local: netip.MustParseAddr("10.0.0.7"), Remote: netip.MustParseAddr("192.0.2.80"),
		Class: spand.ClassBulk, Start: time.Now().Add(-4 * time.Second), Duration: 4,
		Bytes: 8e6, Throughput: 2e6,
	}})
	// How fast can this LAN client receive? (the edge-proxy question)
	p, err := c.Predict(ctx, netip.MustParseAddr("10.0.0.7"), spand.ClassBulk)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Source, p.Throughput, p.Reports)
	// Output: local 2e+06 1
}

func ExampleReporter() {
	store, _ := spand.NewMemoryStore(spand.Config{}, "")
	ts := httptest.NewServer(&spand.Server{Store: store, Logger: slog.New(slog.DiscardHandler)})
	defer ts.Close()

	// A proxy queues what it measured and never waits for the server.
	rp := &spand.Reporter{Client: &spand.Client{BaseURL: ts.URL}, FlushInterval: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rp.Run(ctx); close(done) }()

	rp.Add(spand.Report{
		Local: netip.MustParseAddr("10.0.0.9"), Remote: netip.MustParseAddr("198.51.100.4"),
		Class: spand.ClassWeb, Start: time.Now().Add(-time.Second), Duration: 0.5,
		Bytes: 50_000, Throughput: 100_000, ResponseTime: 40, ResponseRate: 120_000,
	})
	cancel() // Run sends what is queued before it returns
	<-done

	p := store.Aggregator.Predict(netip.MustParseAddr("198.51.100.4"), spand.ClassWeb)
	fmt.Println(p.Source, p.Throughput, p.ResponseRate)
	// Output: host 100000 120000
}
