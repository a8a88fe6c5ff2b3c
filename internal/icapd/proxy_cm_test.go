package icapd_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
)

// TestProxyCONNECTWrapped: with and without the congestion manager, a
// CONNECT tunnel through the proxy delivers the TLS origin's bytes
// intact, written through the proxy's wrapped client connection (the
// one goproxy hijacks): the meter counts them, the tunnel's connection is
// reported when it closes, and with the manager the client's macroflow
// has RTT feedback.
func TestProxyCONNECTWrapped(t *testing.T) {
	payload := bytes.Repeat([]byte("edgeadapt tunnel payload\n"), 1<<14) // 400 KiB
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg") // adapted if it were seen
		w.Write(payload)
	}))
	defer origin.Close()
	client := netip.MustParseAddr("127.0.0.1")
	for _, tt := range []struct {
		name string
		noCM bool
	}{{"congestion manager", false}, {"-proxy-cm=false", true}} {
		t.Run(tt.name, func(t *testing.T) {
			ms, pu := proxytest.Start(t, icapd.Config{ProxyNoCM: tt.noCM}, icapd.ProxyConfig{Addr: "127.0.0.1:0"})
			tr := origin.Client().Transport.(*http.Transport).Clone()
			tr.Proxy = http.ProxyURL(pu)
			resp, body := testenv.Get(t, &http.Client{Transport: tr}, origin.URL+"/x", nil)
			if resp.TLS == nil || !bytes.Equal(body, payload) {
				t.Fatalf("tunnelled body: %d bytes (TLS %t), want the origin's %d", len(body), resp.TLS != nil, len(payload))
			}
			// The client can read the last bytes before the proxy's
			// Write returns and the meter counts them: poll.
			testenv.Poll(t, 10*time.Second, fmt.Sprintf("meter: want at least the %d bytes tunnelled to %s", len(payload), client), func() bool {
				h, ok := ms.Meter.Activity(client)
				return ok && h.Written >= int64(len(payload))
			})
			tr.CloseIdleConnections()
			testenv.Poll(t, 10*time.Second, "a report of the tunnel's connection after it closed", func() bool {
				sent, _ := ms.Meter.Stats()
				return sent > 0
			})
			if tt.noCM {
				if ms.Manager != nil {
					t.Fatal("-proxy-cm=false built a congestion manager")
				}
				return
			}
			mf := ms.Manager.Macroflow("127.0.0.1/32")
			if mf == nil || mf.Stats().SRTT <= 0 {
				t.Fatalf("client macroflow %v: want one with RTT feedback", mf)
			}
		})
	}
}

// TestProxyReportsToSpand: with -spand, the proxy's reports go to the
// spand daemon over HTTP (its POST /v1/reports), not to an in-process
// store, and the policy asks the daemon.
func TestProxyReportsToSpand(t *testing.T) {
	store, err := spand.NewMemoryStore(spand.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	sp := httptest.NewServer(&spand.Server{Store: store, Logger: proxytest.Logger(t)})
	defer sp.Close()
	blob := bytes.Repeat([]byte("x"), 256<<10)
	origin := proxytest.Origin(t, map[string]proxytest.Object{"/blob": {Type: "application/octet-stream", Body: blob}})
	ms, pu := proxytest.Start(t, icapd.Config{Spand: sp.URL}, icapd.ProxyConfig{Addr: "127.0.0.1:0"})
	if ms.Store != nil || ms.Reporter == nil {
		t.Fatalf("with -spand: in-process store %v, reporter %v", ms.Store, ms.Reporter)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	if _, body := testenv.Get(t, &http.Client{Transport: tr}, origin.URL+"/blob", nil); !bytes.Equal(body, blob) {
		t.Fatalf("got %d bytes, want %d", len(body), len(blob))
	}
	tr.CloseIdleConnections()
	client := netip.MustParseAddr("127.0.0.1")
	var p spand.Prediction
	testenv.Poll(t, 10*time.Second, "spand to receive a report of the proxy's client connection", func() bool {
		p, _ = store.Predict(context.Background(), client, spand.ClassWeb)
		return p.Reports > 0
	})
	if p.Throughput <= 0 {
		t.Errorf("spand predicts %+v", p)
	}
}
