//go:build linux

package spand_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testbed"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// TestParallelConnectionsLiveTestbed: a client behind a 1 Mbit/s tbf loads
// "pages" of six 50 kB objects over six parallel keep-alive connections,
// idle between pages, while spand captures live on the serving host's
// LAN interface. The local host's prediction is within 2x of the link
// rate; the median of the connections' tcptrace throughputs (the old
// estimate: each connection's share, diluted by its idle time) is not.
func TestParallelConnectionsLiveTestbed(t *testing.T) {
	const (
		rate   = 1_000_000 // bit/s
		conns  = 6
		object = 50_000 // bytes
		pages  = 3
		idle   = 1500 * time.Millisecond
	)
	e := testbed.NewEdge(t, testbed.EdgeClient{Name: "par", Rate: rate})
	client := e.Clients[0]

	ln, err := e.Proxy.Listen("tcp", netip.AddrPortFrom(e.Proxy.Addr, 80).String())
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, object)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// Live capture inside the proxy's namespace (the socket stays bound
	// to it), on the client-facing interface.
	var src *capture.Live
	err = e.Proxy.Do(func() error {
		lt, err := capture.LinkTypeOf(testbed.EdgeLANIface)
		if err != nil {
			return err
		}
		f, err := capture.CompileFilter("tcp port 80", lt)
		if err != nil {
			return err
		}
		src, err = capture.OpenLive(capture.LiveOptions{Interface: testbed.EdgeLANIface, Filter: f, PollTimeout: 100 * time.Millisecond})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	local := spand.LocalPrefixes()
	agg := spand.NewAggregator(spand.Config{Local: local})
	var (
		mu      sync.Mutex
		reports []spand.Report
		finals  = make(chan struct{}, 64)
	)
	tr := track.New(track.Config{Periodic: -1, CloseLinger: time.Second, OnConn: func(c *track.Conn) {
		r, ok := spand.ReportFromConn(c, local)
		if !ok || !c.Final {
			return
		}
		agg.Add(r)
		mu.Lock()
		reports = append(reports, r)
		mu.Unlock()
		finals <- struct{}{}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		_, err := capture.Run(ctx, src, nil, tr)
		runDone <- err
	}()
	defer func() {
		cancel()
		<-runDone
	}()

	// The client: Go's HTTP/1.1 transport opens one connection per
	// concurrent request and keeps them for the next page.
	tp := &http.Transport{
		MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return client.DialWith(ctx, testbed.Dialer("cubic"), network, addr)
		},
	}
	hc := &http.Client{Transport: tp, Timeout: time.Minute}
	url := "http://" + netip.AddrPortFrom(e.Proxy.Addr, 80).String() + "/"
	for page := range pages {
		if page > 0 {
			// The user reads the page: keep-alive connections idle.
			<-time.After(idle)
		}
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for range conns {
			wg.Go(func() {
				resp, err := hc.Get(url)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != object {
					errs <- fmt.Errorf("got %d bytes: %v", n, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("page %d: %v", page, err)
		}
	}
	tp.CloseIdleConnections()

	deadline := time.After(30 * time.Second)
	for n := 0; n < conns; n++ {
		select {
		case <-finals:
		case <-deadline:
			t.Fatalf("%d of %d connection records after 30 s", n, conns)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var old []float64
	for _, r := range reports {
		t.Logf("report %v: %d bytes over %.2f s: throughput %.0f kbit/s, host rate %.0f kbit/s, response rate %.0f kbit/s",
			r.Remote, r.Bytes, r.Duration, r.Throughput*8/1e3, r.HostRate*8/1e3, r.ResponseRate*8/1e3)
		old = append(old, r.Throughput)
	}
	slices.Sort(old)
	oldBps := old[len(old)/2] * 8
	p := agg.Predict(client.Addr, spand.ClassWeb)
	newBps := p.Throughput * 8
	t.Logf("link %d kbit/s: local prediction %.0f kbit/s (source %s, %d reports); old per-connection median %.0f kbit/s",
		rate/1000, newBps/1e3, p.Source, p.Reports, oldBps/1e3)
	if p.Source != "local" {
		t.Fatalf("prediction source %q, want local", p.Source)
	}
	if newBps < rate/2 || newBps > rate*2 {
		t.Errorf("local prediction %.0f kbit/s, want within 2x of %d kbit/s", newBps/1e3, rate/1000)
	}
	if oldBps >= rate/2 {
		t.Errorf("old estimate %.0f kbit/s is within 2x of the link: the test does not show the difference", oldBps/1e3)
	}
}
