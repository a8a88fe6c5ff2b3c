package icapd_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
	"github.com/edgeadapt/edgeadapt/internal/testbed"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// BenchmarkProxyThroughput fetches a 4 MiB body that no rule adapts
// through the proxy on loopback, with its client connections under the
// congestion manager and without (-proxy-cm=false); both meter and
// report. Compare the two in one run:
//
//	go test -run '^$' -bench ProxyThroughput -count 6 ./internal/icapd
func BenchmarkProxyThroughput(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	origin := proxytest.Origin(b, map[string]proxytest.Object{"/blob": {Type: "application/octet-stream", Body: body}})
	for _, bb := range []struct {
		name string
		noCM bool
	}{{"cm", false}, {"nocm", true}} {
		b.Run(bb.name, func(b *testing.B) {
			_, pu := proxytest.Start(b, icapd.Config{ProxyNoCM: bb.noCM}, icapd.ProxyConfig{Addr: "127.0.0.1:0"})
			tr := &http.Transport{Proxy: http.ProxyURL(pu)}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for b.Loop() {
				resp, err := c.Get(origin.URL + "/blob")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != int64(len(body)) {
					b.Fatalf("got %d bytes, %v; want %d", n, err, len(body))
				}
			}
		})
	}
}

// BenchmarkProxySmall fetches small bodies that no rule adapts (10 KB
// and 100 KB) through the proxy on loopback, with the client connections
// under the congestion manager and without (-proxy-cm=false), in three
// ways: back to back over one keep-alive connection ("keepalive"), over
// a fresh connection per request ("fresh"), and over one keep-alive
// connection after ProxySmallThink without traffic ("think", a browser's
// next page; the timer stops during the pause). Every socket runs cubic
// (the machine's default is BBR; the congestion manager pins cubic on
// the sockets it gates). It reports the process's CPU time per request
// besides the wall clock. -count N repeats each case N times in a row;
// bench/proxy-small.sh runs rounds of all cases instead, so that cm and
// nocm are measured interleaved on a noisy machine, and prints medians
// and ratios:
//
//	go test -run '^$' -bench ProxySmall ./internal/icapd
//	ROUNDS=8 bench/proxy-small.sh
func BenchmarkProxySmall(b *testing.B) {
	objs := map[string]proxytest.Object{}
	sizes := []int{10_000, 100_000}
	for _, n := range sizes {
		objs[fmt.Sprintf("/%d", n)] = proxytest.Object{Type: "application/octet-stream", Body: bytes.Repeat([]byte{'x'}, n)}
	}
	origin := proxytest.Origin(b, objs)
	for _, n := range sizes {
		for _, mode := range []string{"keepalive", "fresh", "think"} {
			for _, noCM := range []bool{false, true} {
				name := fmt.Sprintf("%dKB/%s/%s", n/1000, mode, map[bool]string{false: "cm", true: "nocm"}[noCM])
				b.Run(name, func(b *testing.B) {
					ln, err := cubicListen()
					if err != nil {
						b.Fatal(err)
					}
					_, pu := proxytest.Start(b, icapd.Config{ProxyNoCM: noCM}, icapd.ProxyConfig{Listener: ln})
					tr := &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: mode == "fresh", DialContext: testbed.Dialer("cubic").DialContext}
					defer tr.CloseIdleConnections()
					c := &http.Client{Transport: tr}
					url := fmt.Sprintf("%s/%d", origin.URL, n)
					get := func() {
						resp, err := c.Get(url)
						if err != nil {
							b.Fatal(err)
						}
						got, err := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err != nil || got != int64(n) {
							b.Fatalf("got %d bytes, %v; want %d", got, err, n)
						}
					}
					get() // the connection and the macroflow exist
					b.SetBytes(int64(n))
					var cpu time.Duration
					for b.Loop() {
						if mode == "think" {
							b.StopTimer()
							<-time.After(ProxySmallThink) // think time, not synchronisation
							b.StartTimer()
						}
						cpu0 := testenv.CPUTime()
						get()
						cpu += testenv.CPUTime() - cpu0
					}
					// Client, proxy and origin share the process: its CPU
					// per request is the steadier figure on a busy machine.
					b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
				})
			}
		}
	}
}

// ProxySmallThink is the pause before each request of BenchmarkProxySmall's
// "think" cases: long enough for the congestion manager to age an idle
// macroflow's window to its floor (it halves every srtt, at least
// congestion.DefaultPollInterval, without feedback).
const ProxySmallThink = 50 * time.Millisecond

// cubicListen listens on loopback with TCP_CONGESTION=cubic (set as
// testbed.Dialer sets it), which the connections it accepts inherit.
func cubicListen() (net.Listener, error) {
	lc := net.ListenConfig{Control: testbed.Dialer("cubic").Control}
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
}
