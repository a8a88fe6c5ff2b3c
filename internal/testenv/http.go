package testenv

import (
	"io"
	"net/http"
	"testing"
)

// Get fetches u with client, adding hdr to the request, and returns the
// response with its whole body read (and closed). Any transport or read
// error fails the test; the status is the caller's to check.
func Get(t testing.TB, client *http.Client, u string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp, b
}
