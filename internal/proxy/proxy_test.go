package proxy_test

import (
	"bytes"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/internal/proxy/proxytest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// startProxy starts icapd's proxy on loopback as icapd.Main does, with
// the repository's policy.toml, stopped when the test ends.
func startProxy(t *testing.T) *url.URL {
	t.Helper()
	_, u := proxytest.Start(t, icapd.Config{}, icapd.ProxyConfig{Addr: "127.0.0.1:0"})
	return u
}

func TestProxyAdaptsLikeTheICAPServices(t *testing.T) {
	jpg := testenv.ReadCorpus(t, "images", "imagor__people.jpg")
	origCfg, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
	if err != nil {
		t.Fatal(err)
	}
	html := testenv.ReadCorpus(t, "html", "sample_bbc.html")
	origin := proxytest.Origin(t, map[string]proxytest.Object{
		"/people.jpg": {Type: "image/jpeg", Body: jpg},
		"/page.html":  {Type: "text/html; charset=utf-8", Body: html},
	})
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(startProxy(t))}}

	tests := []struct {
		name    string
		path    string
		hdr     http.Header
		orig    []byte
		adapted bool
	}{
		{"jpeg, no hints", "/people.jpg", http.Header{"Accept": {"image/jpeg"}}, jpg, false},
		{"html, no hints", "/page.html", nil, html, false},
		{"jpeg, Save-Data", "/people.jpg", http.Header{"Accept": {"image/jpeg"}, "Save-Data": {"on"}}, jpg, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, c, origin.URL+tt.path, tt.hdr)
			if !tt.adapted {
				if !bytes.Equal(body, tt.orig) {
					t.Fatalf("body differs from the origin's: %d bytes, want %d; X-Adapted %q", len(body), len(tt.orig), resp.Header.Get("X-Adapted"))
				}
				return
			}
			if resp.Header.Get("X-Adapted") == "" {
				t.Errorf("no X-Adapted header; header %v", resp.Header)
			}
			if len(body) >= len(tt.orig) {
				t.Errorf("adapted body is %d bytes, original %d", len(body), len(tt.orig))
			}
			img, err := jpeg.Decode(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("adapted body (%s) is not a JPEG: %v", resp.Header.Get("Content-Type"), err)
			}
			if w := img.Bounds().Dx(); w >= origCfg.Width {
				t.Errorf("adapted width %d, want < original %d", w, origCfg.Width)
			}
		})
	}
}

func TestProxyTunnelsCONNECTUntouched(t *testing.T) {
	payload := bytes.Repeat([]byte("edgeadapt tunnel payload\n"), 4096)
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg") // would be adapted if it were seen
		w.Write(payload)
	}))
	defer origin.Close()
	tr := origin.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(startProxy(t))
	c := &http.Client{Transport: tr}
	resp, body := get(t, c, origin.URL+"/x", http.Header{"Save-Data": {"on"}})
	if resp.TLS == nil {
		t.Fatal("response did not come over TLS")
	}
	if !bytes.Equal(body, payload) {
		t.Fatalf("tunnelled body differs: %d bytes, want %d", len(body), len(payload))
	}
}

func TestProxyFlag(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		want  string
		noCM  bool
		isSet bool
	}{
		{nil, "127.0.0.1:3128", false, false},
		{[]string{"-proxy", "127.0.0.1:8080"}, "127.0.0.1:8080", false, true},
		{[]string{"-proxy", ""}, "off", false, true},
		{[]string{"-proxy", "off"}, "off", false, true},
		{[]string{"-proxy-cm=false"}, "127.0.0.1:3128", true, false},
	} {
		cfg, err := icapd.ParseFlags(tt.args, io.Discard)
		if err != nil {
			t.Fatalf("ParseFlags(%q): %v", tt.args, err)
		}
		if cfg.Proxy != tt.want || cfg.ProxyNoCM != tt.noCM || cfg.ProxySet != tt.isSet {
			t.Errorf("ParseFlags(%q): Proxy %q, ProxyNoCM %t, ProxySet %t; want %q, %t, %t", tt.args, cfg.Proxy, cfg.ProxyNoCM, cfg.ProxySet, tt.want, tt.noCM, tt.isSet)
		}
	}
}
