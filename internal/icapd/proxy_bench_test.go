package icapd_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
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
