package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLoadSeesErrors proves the checks can fail: a page with a console
// error, an uncaught exception and a missing image yields one error for
// each, and a clean page none.
func TestLoadSeesErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/bad", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><p id=x>bad page</p>
<img src="/missing.png"><script>console.error("boom"); undefinedFunction();</script></body></html>`)
	})
	mux.HandleFunc("/csp", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		fmt.Fprint(w, `<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><p>csp page</p><img src="/blocked.png"></body></html>`)
	})
	mux.HandleFunc("/good", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><h1>good page</h1></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	bad := Load(t, srv.URL+"/bad", Options{Width: 800, Height: 600})
	if bad.Status != 200 || !strings.Contains(bad.DOM, "bad page") {
		t.Errorf("status %d, DOM %.200q", bad.Status, bad.DOM)
	}
	all := strings.Join(bad.Errors, "\n")
	for _, want := range []string{"console.error: boom", "undefinedFunction", "404"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	bad.SaveScreenshot(t, "browsertest-bad.png", 800, 600)

	csp := Load(t, srv.URL+"/csp", Options{})
	if all := strings.Join(csp.Errors, "\n"); !strings.Contains(all, "Content Security Policy") {
		t.Errorf("CSP violation not seen; errors:\n%s", all)
	}

	good := Load(t, srv.URL+"/good", Options{})
	if len(good.Errors) != 0 || !strings.Contains(good.DOM, "<h1>good page</h1>") {
		t.Errorf("clean page: errors %q, DOM %.200q", good.Errors, good.DOM)
	}
	good.SaveScreenshot(t, "browsertest-good.png", DefaultWidth, DefaultHeight)
}
