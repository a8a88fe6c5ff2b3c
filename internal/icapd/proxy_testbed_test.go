package icapd_test

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
	"github.com/edgeadapt/edgeadapt/internal/testbed"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
)

// Rates of policy.toml's classes, in bytes per second.
const (
	slowBelow   = 512_000 / 8
	mediumBelow = 2_000_000 / 8
)

// TestProxySlowClientAdapted runs the proxy on a test bed: the proxy on
// sender0, a slow client behind a 200 kbit/s tbf (receiver0) and a fast
// client on the proxy's side of the bottleneck (sender1); the origin is
// on the test process's loopback. Each client first downloads 96 KiB
// that no rule adapts; the proxy measures it (the congestion manager's
// macroflow, TCP_INFO) and reports it to the in-process store. The slow
// client's next image is then adapted, the fast client's is the
// origin's, byte for byte. With the congestion manager the policy's
// class comes from the live macroflow; without it (-proxy-cm=false),
// from the reports alone.
func TestProxySlowClientAdapted(t *testing.T) {
	jpg := testenv.ReadCorpus(t, "images", "sharp__flowers.jpeg")
	origCfg, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	warm := bytes.Repeat([]byte("edgeadapt warm-up bytes\n"), 4096) // 96 KiB
	origin := proxytest.Origin(t, map[string]proxytest.Object{
		"/warm":         {Type: "application/octet-stream", Body: warm},
		"/flowers.jpeg": {Type: "image/jpeg", Body: jpg},
	})

	for _, tt := range []struct {
		name string
		noCM bool
	}{
		{"congestion manager", false},
		{"reports only (-proxy-cm=false)", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tb := testbed.New(t, testbed.Topology{Senders: 2, Receivers: 1, Rate: 200_000, Queue: 100 * time.Millisecond})
			ms, proxyURL := startTestbedProxy(t, tb.Senders[0], icapd.Config{ProxyNoCM: tt.noCM})
			if (ms.Manager == nil) != tt.noCM {
				t.Fatalf("congestion manager %v with ProxyNoCM %t", ms.Manager, tt.noCM)
			}
			slow, fast := tb.Receivers[0], tb.Senders[1]
			cm := &adapt.CM{Manager: ms.Manager, Activity: ms.Meter}
			for _, h := range []*testbed.Host{slow, fast} {
				c := &http.Client{Transport: &http.Transport{
					Proxy: http.ProxyURL(proxyURL),
					DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
						return h.DialWith(ctx, testbed.Dialer("cubic"), network, addr)
					},
				}}
				isSlow := h == slow
				start := time.Now()
				_, body := testenv.Get(t, c, origin.URL+"/warm", nil)
				if !bytes.Equal(body, warm) {
					t.Fatalf("%s: warm-up body differs from the origin's", h.Addr)
				}
				t.Logf("%s: warm-up at %.0f kbit/s", h.Addr, float64(len(warm))*8/time.Since(start).Seconds()/1000)
				if isSlow {
					// The meter's interim reports of the keep-alive
					// connection land in the store.
					pr := waitPrediction(t, ms.Store, h.Addr, 2)
					if pr.Source != spand.KindLocal.String() || pr.Throughput >= slowBelow {
						t.Errorf("%s: store predicts %+v; want the client's own (local) reports, below %d B/s", h.Addr, pr, slowBelow)
					}
				}
				if !tt.noCM {
					p, ok := cm.Predict(context.Background(), h.Addr)
					t.Logf("%s: congestion manager: %.0f B/s, srtt %v (%t)", h.Addr, p.Throughput, p.RTT, ok)
					// slow: below 512 kbit/s (the macroflow's rate capped by
					// what the connection delivered); fast: 2 Mbit/s or more.
					if !ok || (isSlow && p.Throughput >= slowBelow) || (!isSlow && p.Throughput < mediumBelow) {
						t.Errorf("%s: congestion manager predicts %.0f B/s (answered %t); want below %d B/s for the slow client, at least %d for the fast", h.Addr, p.Throughput, ok, slowBelow, mediumBelow)
					}
				}
				resp, body := testenv.Get(t, c, origin.URL+"/flowers.jpeg", http.Header{"Accept": {"image/jpeg"}})
				adapted := resp.Header.Get("X-Adapted")
				t.Logf("%s: image %d bytes, X-Adapted %q", h.Addr, len(body), adapted)
				if !isSlow {
					if !bytes.Equal(body, jpg) {
						t.Errorf("fast client %s: image is %d bytes (X-Adapted %q), want the origin's %d", h.Addr, len(body), adapted, len(jpg))
					}
					continue
				}
				img, err := jpeg.Decode(bytes.NewReader(body))
				switch {
				case adapted == "" || len(body) >= len(jpg):
					t.Errorf("slow client %s: image %d bytes, X-Adapted %q; want it adapted (original %d)", h.Addr, len(body), adapted, len(jpg))
				case err != nil:
					t.Errorf("slow client %s: adapted image is no JPEG: %v", h.Addr, err)
				case img.Bounds().Dx() >= origCfg.Width:
					t.Errorf("slow client %s: adapted width %d, want < %d", h.Addr, img.Bounds().Dx(), origCfg.Width)
				}
				// The proxy holds bodies whole (no early commit): X-Adapted
				// is the transcode's, "image/jpeg q=30 320w grey; original=...".
				if !strings.Contains(adapted, " 320w") {
					t.Errorf("slow client %s: X-Adapted %q; measured below 512 kbit/s, it is slow: want profile tiny (320 px wide)", h.Addr, adapted)
				}
			}
			if sent, failed := ms.Meter.Stats(); sent < 2 || failed != 0 {
				t.Errorf("meter: %d reports sent, %d failed", sent, failed)
			}
		})
	}
}

// startTestbedProxy starts the proxy of cfg's measurement (the
// in-process store) with the repository's policy, listening inside
// host.
func startTestbedProxy(t *testing.T, host *testbed.Host, cfg icapd.Config) (*icapd.Measurement, *url.URL) {
	t.Helper()
	ln, err := host.Listen("tcp", net.JoinHostPort(host.Addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	return proxytest.Start(t, cfg, icapd.ProxyConfig{Listener: ln})
}

// waitPrediction polls the store until it predicts addr from at least
// reports reports, and fails the test after 10 s.
func waitPrediction(t *testing.T, st spand.Store, addr netip.Addr, reports int) spand.Prediction {
	t.Helper()
	var pr spand.Prediction
	var err error
	testenv.Poll(t, 10*time.Second, fmt.Sprintf("a prediction for %s from %d reports in the store", addr, reports), func() bool {
		pr, err = st.Predict(context.Background(), addr, spand.ClassWeb)
		return err == nil && pr.Reports >= reports
	})
	return pr
}
