package squidtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Origin is a loopback HTTP origin server. GET /bytes/N answers N bytes of
// a deterministic pseudo-random stream (ChaCha8 seeded from N), with
// Content-Length and Content-Type application/octet-stream, so tests can
// fetch bodies of any size and check them with Digest without holding them.
type Origin struct {
	srv      *httptest.Server
	requests atomic.Int64
}

// NewOrigin starts an Origin on 127.0.0.1; it is closed in t.Cleanup.
func NewOrigin(t testing.TB) *Origin {
	t.Helper()
	o := &Origin{}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

// URL returns the address of a body of n bytes, with 127.0.0.1 as host.
func (o *Origin) URL(n int64) string {
	return fmt.Sprintf("%s/bytes/%d", o.srv.URL, n)
}

// Requests returns how many requests the origin has served.
func (o *Origin) Requests() int64 { return o.requests.Load() }

func (o *Origin) serve(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	s, ok := strings.CutPrefix(r.URL.Path, "/bytes/")
	n, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || n < 0 {
		http.Error(w, "want /bytes/N", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead {
		return
	}
	io.Copy(w, Body(n))
}

// Body returns the deterministic body of n bytes the origin serves.
func Body(n int64) io.Reader {
	var seed [32]byte
	copy(seed[:], strconv.FormatInt(n, 10))
	return io.LimitReader(rand.NewChaCha8(seed), n)
}

// Digest returns the hex SHA-256 of Body(n).
func Digest(n int64) string {
	h := sha256.New()
	io.Copy(h, Body(n))
	return hex.EncodeToString(h.Sum(nil))
}
