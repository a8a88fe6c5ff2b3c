package icap_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
	"github.com/edgeadapt/edgeadapt/internal/squidtest"
)

// TestSquidICAPTrailer runs real Squid (5.7 parses ICAP trailers) against
// a RESPMOD service that announces "Allow: trailers" and answers every
// response with a modified echo followed by an ICAP trailer. Squid must
// ask for trailers (Allow: trailers), accept the answers (ICAP_MOD in its
// icap_log, no trailer error in cache.log), deliver the bodies intact and
// keep using its ICAP connection: a misframed trailer would break the
// next transaction on it. (The first version of the trailer support
// failed here: Squid requires "Allow: trailers" in every ICAP response
// that has a Trailer header, ModXact::expectIcapTrailers.)
func TestSquidICAPTrailer(t *testing.T) {
	origin := squidtest.NewOrigin(t)
	var allowed, answered atomic.Int64
	mux := icap.NewServeMux()
	mux.HandleFunc("/respmod", func(w icap.ResponseWriter, r *icap.Request) {
		if !r.AllowTrailers || r.Response == nil {
			icap.NoModification(w, r)
			return
		}
		allowed.Add(1)
		tw := w.(icap.ICAPTrailerWriter)
		tw.ICAPTrailer()["X-Scan-Result"] = nil
		r.Response.Header.Set("X-Scanned", "1")
		w.WriteHeader(icap.StatusOK, r.Response, true)
		n, err := io.Copy(w, r.Body)
		if err != nil {
			return
		}
		tw.ICAPTrailer().Set("X-Scan-Result", "clean; bytes="+itoa(int(n)))
		answered.Add(1)
	}, icap.ServiceOptions{Methods: []string{icap.MethodRESPMOD}, AllowTrailers: true, Allow204: true})
	srv := icaptest.NewServer(mux)
	defer srv.Close()

	sq := squidtest.Start(t, squidtest.Config{Services: []squidtest.Service{
		{Name: "trailer_resp", Point: squidtest.RespmodPrecache, URL: srv.ServiceURL("/respmod")},
	}})
	client := sq.Client()
	// Bodies stay below Squid's BodyPipe capacity (64 KB): with a larger
	// one, Squid 5.7 may never read the ICAP trailer and keep the
	// transaction (and its connection) open until icap_io_timeout,
	// although the HTTP response is complete. That is a Squid bug, shown
	// by TestSquidICAPTrailerStall: if the adapted body pipe is full when
	// the last chunk is in Squid's read buffer and the trailer is not
	// (yet), ModXact parses the last chunk from noteMoreBodySpaceAvailable
	// and enters psIcapTrailer without scheduling another read. This test
	// once failed in CI that way with a 1 MB body under load (the HTTP
	// client read slower than the ICAP server wrote). Large bodies with
	// trailers are covered without Squid by TestICAPTrailerLargeBody.
	sizes := []int64{0, 10 << 10, 48 << 10, 10 << 10}
	for _, size := range sizes {
		resp, err := client.Get(origin.URL(size))
		if err != nil {
			t.Fatalf("GET %d bytes through squid: %v", size, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || n != size || hex.EncodeToString(h.Sum(nil)) != squidtest.Digest(size) {
			t.Fatalf("GET %d bytes: status %d, %d bytes, err %v, digest ok %v", size, resp.StatusCode, n, err, hex.EncodeToString(h.Sum(nil)) == squidtest.Digest(size))
		}
		if resp.Header.Get("X-Scanned") != "1" {
			t.Errorf("GET %d bytes: the adapted response did not arrive (X-Scanned %q)", size, resp.Header.Get("X-Scanned"))
		}
	}
	entries := sq.WaitICAPLog(t, 30*time.Second, func(e []squidtest.ICAPLogEntry) bool {
		n := 0
		for _, x := range e {
			if x.Method == "RESPMOD" {
				n++
			}
		}
		return n >= len(sizes)
	})
	for _, e := range entries {
		if e.Method == "RESPMOD" && (e.Outcome != "ICAP_MOD" || e.Status != 200) {
			t.Errorf("icap_log: %s", e.Line)
		}
	}
	if got := allowed.Load(); got != int64(len(sizes)) {
		t.Errorf("Squid sent Allow: trailers on %d of %d RESPMODs", got, len(sizes))
	}
	if got := answered.Load(); got != int64(len(sizes)) {
		t.Errorf("%d of %d answers carried the ICAP trailer", got, len(sizes))
	}
	if log := sq.CacheLog(); strings.Contains(log, "railer") {
		t.Errorf("cache.log mentions trailers:\n%s", log)
	}
	// Squid fetches OPTIONS on a connection of its own, then sends the
	// RESPMODs one after the other on one persistent connection, which a
	// misframed trailer would break.
	if n := srv.Accepted(); n > 2 {
		t.Errorf("Squid opened %d ICAP connections for OPTIONS and %d RESPMODs, want at most 2 (persistent, trailers framed right)", n, len(sizes))
	}
}
