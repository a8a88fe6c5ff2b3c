package proxy_test

import (
	"bytes"

	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/proxy"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
)

// TestProxyFailOpen: a RESPMOD handler that fails before reading the
// body passes the original response; the handlers see the proxy client's
// address as X-Client-IP.
func TestProxyFailOpen(t *testing.T) {
	payload := bytes.Repeat([]byte("original "), 1000)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	defer origin.Close()
	var reqIP, respIP atomic.Value
	p := &proxy.Proxy{
		Reqmod: icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
			reqIP.Store(r.ClientIP)
			icap.NoModification(w, r)
		}),
		Respmod: icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
			respIP.Store(r.Header.Get("X-Client-IP"))
			panic("adaptation broke")
		}),
		ReqmodPath: "/reqmod", RespmodPath: "/respmod",
		Logger: proxytest.Logger(t),
	}
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	pu, _ := url.Parse(srv.URL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	_, body := get(t, c, origin.URL+"/x", nil)
	if !bytes.Equal(body, payload) {
		t.Fatalf("got %d bytes, want the original %d", len(body), len(payload))
	}
	for name, v := range map[string]*atomic.Value{"reqmod": &reqIP, "respmod": &respIP} {
		if got, _ := v.Load().(string); got != "127.0.0.1" {
			t.Errorf("%s client IP %q, want 127.0.0.1", name, got)
		}
	}
}
