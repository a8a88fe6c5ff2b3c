package spand

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
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
	if q, _ := rp.Queued(); q != 0 {
		t.Fatalf("%d still queued", q)
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
	if q, _ := rp2.Queued(); q != 0 {
		t.Fatalf("rejected batch still queued (%d)", q)
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
