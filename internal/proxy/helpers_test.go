package proxy_test

import (
	"net/http"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// get fetches u through c and fails the test unless the answer is 200.
func get(t *testing.T, c *http.Client, u string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	resp, b := testenv.Get(t, c, u, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	return resp, b
}
