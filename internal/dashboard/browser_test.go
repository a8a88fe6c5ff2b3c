package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/dashboard/browsertest"
)

// TestPageInChromium renders the sample page (hostile names included) in
// headless Chromium: it loads without a console error or a CSP
// violation, shows every host and one chart each, and the screenshot is
// saved as a test artifact.
func TestPageInChromium(t *testing.T) {
	srv := httptest.NewServer(Handler(func(*http.Request) (*Page, error) {
		p := samplePage()
		p.Refresh = 0 // a reload during the screenshot would be a flake
		return p, nil
	}, nil))
	defer srv.Close()
	res := browsertest.Load(t, srv.URL, browsertest.Options{})
	if len(res.Errors) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(res.Errors, "\n"))
	}
	for _, want := range []string{"192.0.2.10", "192.0.2.11", "&lt;script&gt;", "256 kbit/s", "slow-images", "image/jpeg"} {
		if !strings.Contains(res.DOM, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if n := strings.Count(res.DOM, "<svg"); n != 3 {
		t.Errorf("%d charts in the DOM, want 3", n)
	}
	res.SaveScreenshot(t, "dashboard-sample.png", browsertest.DefaultWidth, browsertest.DefaultHeight)
}
