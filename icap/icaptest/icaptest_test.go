package icaptest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

func TestRecorder(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", Header: http.Header{}}
	req := icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/x", nil, resp, strings.NewReader("abc"))
	if b, _ := io.ReadAll(resp.Body); string(b) != "abc" {
		t.Fatalf("encapsulated body %q, want the request body", b)
	}
	rec := icaptest.NewRecorder()
	if err := icap.NoModification(rec, req); err != nil {
		t.Fatal(err)
	}
	// No Allow, no preview: a full echo (of an already drained body here).
	if rec.Code != 200 || rec.Msg != resp || !rec.HasBody {
		t.Fatalf("recorded %d %v %v", rec.Code, rec.Msg, rec.HasBody)
	}

	req = icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/x", nil, resp, nil)
	req.Allow204 = true
	rec = icaptest.NewRecorder()
	icap.NoModification(rec, req)
	if rec.Code != 204 || rec.HasBody {
		t.Fatalf("with Allow 204: %d", rec.Code)
	}

	rec = icaptest.NewRecorder()
	rec.WriteHeader(icap.StatusPartialContent, resp, false)
	rec.UseOriginalBody(7)
	rec.WriteHeader(500, nil, false) // ignored: only the first counts
	if _, err := rec.Write([]byte("x")); !errors.Is(err, icap.ErrBodyNotAllowed) {
		t.Fatalf("Write without body: %v", err)
	}
	if rec.Code != 206 || rec.OriginalOffset != 7 {
		t.Fatalf("recorded %d offset %d", rec.Code, rec.OriginalOffset)
	}

	rec = icaptest.NewRecorder()
	rec.Write([]byte("a"))
	rec.Write([]byte("bc"))
	rec.Trailer().Set("X-T", "1")
	rec.ICAPTrailer().Set("X-Verdict", "clean")
	if rec.Code != 200 || rec.Body.String() != "abc" || rec.Chunks != 2 || rec.Trailers.Get("X-T") != "1" || rec.ICAPTrailers.Get("X-Verdict") != "clean" {
		t.Fatalf("recorded %d %q %d chunks", rec.Code, rec.Body, rec.Chunks)
	}
}

func TestServerPlainAndTLS(t *testing.T) {
	h := icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) { icap.NoModification(w, r) })
	for _, tls := range []bool{false, true} {
		s := icaptest.NewUnstartedServer(h)
		if tls {
			s.StartTLS()
		} else {
			s.Start()
		}
		for range 3 {
			resp, err := s.Client().Options(context.Background(), s.ServiceURL("svc"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.ISTag() == "" {
				t.Fatalf("tls=%v: %d %v", tls, resp.StatusCode, resp.Header)
			}
		}
		if s.Accepted() != 1 {
			t.Fatalf("tls=%v: %d connections for 3 requests", tls, s.Accepted())
		}
		s.Close()
	}
}
