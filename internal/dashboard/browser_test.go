package dashboard

import (
	"net/http"
	"net/http/httptest"
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
	browsertest.CheckPage(t, srv.URL, browsertest.Expect{
		Contains:   []string{"192.0.2.10", "192.0.2.11", "&lt;script&gt;", "256 kbit/s", "slow-images", "image/jpeg"},
		Charts:     3,
		Screenshot: "dashboard-sample.png",
	})
}
