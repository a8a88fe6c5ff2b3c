package proxy_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// get fetches u through c and fails the test unless the answer is 200.
func get(t *testing.T, c *http.Client, u string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	resp, b := testenv.Get(t, c, u, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	return resp, b
}
