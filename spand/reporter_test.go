package spand

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReporter(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{}
	live := newTestServer(t, srv, clk)
	down := httptest.NewServer(nil)
	down.Close() // nothing listens there any more
	rp := &Reporter{Client: &Client{BaseURL: down.URL}, MaxQueue: 3, Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()

	good := rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5)
	bad := good
	bad.Class = "ftp"
	if rp.Add(bad) {
		t.Fatal("invalid report queued")
	}
	for i := range 4 {
		if ok := rp.Add(good); ok != (i < 3) {
			t.Fatalf("Add #%d = %v with MaxQueue 3", i, ok)
		}
	}
	if err := rp.Flush(ctx); err == nil {
		t.Fatal("flush to a closed server succeeded")
	}
	if q, dropped := rp.Queued(); q != 3 || dropped != 1 {
		t.Fatalf("queued %d, dropped %d after a failed flush; want 3 and 1", q, dropped)
	}
	rp.Client.BaseURL = live.URL // the server is back
	if err := rp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := rp.Stats(); st != (ReporterStats{Sent: 3, Dropped: 1, Failures: 1}) {
		t.Fatalf("stats %+v after the server came back", st)
	}
	if st := srv.Store.(*MemoryStore).Stats(); st.Reports != 3 {
		t.Fatalf("server got %d reports, want 3", st.Reports)
	}

	// A batch the server refuses as bad input is dropped, not retried
	// forever.
	strict := &Server{MaxBatch: 1}
	ts := newTestServer(t, strict, clk)
	rp2 := &Reporter{Client: &Client{BaseURL: ts.URL, MaxBatch: 2}, Logger: slog.New(slog.DiscardHandler)}
	rp2.Add(good)
	rp2.Add(good)
	if err := rp2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := rp2.Stats(); st != (ReporterStats{Rejected: 2}) {
		t.Fatalf("rejected batch: stats %+v", st)
	}

	// Run sends the queue at shutdown.
	rp.Add(good)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { rp.Run(rctx); close(done) }()
	cancel()
	<-done
	if st := srv.Store.(*MemoryStore).Stats(); st.Reports != 4 {
		t.Fatalf("server got %d reports after Run, want 4", st.Reports)
	}
}

// TestReporterBoundAndDrain: reports queued while a flush fails stay
// within MaxQueue (the oldest go, counted), and Drain keeps trying until
// the server is back.
func TestReporterBoundAndDrain(t *testing.T) {
	clk := newFakeClock()
	srv := &Server{}
	live := newTestServer(t, srv, clk)
	down := httptest.NewServer(nil)
	down.Close()
	rp := &Reporter{Client: &Client{BaseURL: down.URL}, MaxQueue: 4, FlushInterval: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	for range 4 {
		rp.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5))
	}
	if rp.Add(rep("10.0.0.5", "192.0.2.10", ClassWeb, clk.Now(), 1e5)) {
		t.Fatal("fifth report queued with MaxQueue 4")
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := rp.Drain(dctx); err == nil {
		t.Fatal("Drain to a closed server succeeded")
	}
	st := rp.Stats()
	if st.Queued != 4 || st.Dropped != 1 || st.Failures < 2 || st.Sent != 0 {
		t.Fatalf("after a failed Drain: %+v (want 4 queued, 1 dropped, retried)", st)
	}
	rp.Client.BaseURL = live.URL
	if err := rp.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if st := rp.Stats(); st.Queued != 0 || st.Sent != 4 {
		t.Fatalf("after Drain: %+v", st)
	}
	var b strings.Builder
	rp.WriteMetrics(&b)
	if !strings.Contains(b.String(), "spand_forward_sent_total 4\n") || !strings.Contains(b.String(), "spand_forward_dropped_total 1\n") {
		t.Fatalf("metrics:\n%s", b.String())
	}
}
