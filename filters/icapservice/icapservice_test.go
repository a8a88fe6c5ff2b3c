package icapservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
)

// upperTranscoder is a real, if simple, transformation: it upper-cases
// the body, so a test can tell transformed from original bytes.
type upperTranscoder struct{ fail bool }

func (u upperTranscoder) Transcode(_ context.Context, d *policy.Decision, ct string, body io.Reader) (io.Reader, string, error) {
	if u.fail {
		return nil, "", errors.New("transcoder broke")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, "", err
	}
	return bytes.NewReader(bytes.ToUpper(b)), "text/html; charset=utf-8", nil
}

// earlyUpper is upperTranscoder with early commits: the header it
// commits to says X-Early, and fail makes the committed transcode fail.
type earlyUpper struct{ upperTranscoder }

func (u earlyUpper) Early(d *policy.Decision, req *http.Request, resp *http.Response) *policy.EarlyTranscode {
	if resp.Header.Get("X-No-Early") != "" {
		return nil
	}
	h := resp.Header.Clone()
	h.Del("Content-Length")
	h.Set("X-Early", "yes")
	return &policy.EarlyTranscode{Header: h, Transcode: func(ctx context.Context, body []byte) ([]byte, error) {
		out, _, err := u.Transcode(ctx, d, "", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(out)
	}}
}

type fixture struct {
	srv    *icaptest.Server
	svc    *Service
	holder *policy.Holder
	logs   *testenv.SyncBuffer
	path   string
}

func newFixture(t *testing.T, tr policy.Transcoder) *fixture {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	h, err := policy.NewHolder(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Policy: h, Transcoder: tr, Logger: logger, MaxBodyBytes: 1 << 10}
	srv := icaptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, svc: svc, holder: h, logs: logs, path: path}
}

// do sends one ICAP request and returns the response and its body.
func (f *fixture) do(t *testing.T, method, rawURL string, reqHdr http.Header, resp *http.Response, body string) (*icap.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range reqHdr {
		req.Header[k] = v
	}
	path := "/reqmod"
	if method == icap.MethodRESPMOD {
		path = "/respmod"
		if body != "" {
			resp.Body = io.NopCloser(strings.NewReader(body))
			resp.ContentLength = int64(len(body))
			if _, ok := resp.Header["Content-Length"]; !ok {
				resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			} else if resp.Header.Get("Content-Length") == "" {
				// An explicit empty value: send no length (unknown).
				resp.Header.Del("Content-Length")
				resp.ContentLength = -1
			}
		}
	}
	ir, err := icap.NewRequest(method, f.srv.ServiceURL(path), req, resp)
	if err != nil {
		t.Fatal(err)
	}
	ir.Allow204 = true
	ir.Header.Set("X-Client-IP", "192.0.2.10")
	r, err := f.srv.Client().Do(ir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, string(b)
}

func htmlResponse(h http.Header) *http.Response {
	resp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{"Content-Type": {"text/html"}}}
	for k, v := range h {
		resp.Header[k] = v
	}
	return resp
}

func TestReqmod(t *testing.T) {
	f := newFixture(t, nil)
	tag := ISTag(f.holder.Policy())

	r, body := f.do(t, icap.MethodREQMOD, "http://www.blocked.example/x", nil, nil, "")
	if r.StatusCode != 200 || r.Response == nil || r.Response.StatusCode != 403 || !strings.Contains(body, "block-host") || !strings.Contains(body, "test block") {
		t.Errorf("block: ICAP %d, HTTP %v, body %q", r.StatusCode, r.Response, body)
	}
	if r.ISTag() != tag || r.Header.Get("X-Policy-Rule") != "block-host" {
		t.Errorf("ISTag %q (want %q), rule %q", r.ISTag(), tag, r.Header.Get("X-Policy-Rule"))
	}

	r, _ = f.do(t, icap.MethodREQMOD, "http://old.example/a", nil, nil, "")
	if r.Response == nil || r.Response.StatusCode != 302 || r.Response.Header.Get("Location") != "http://new.example/" {
		t.Errorf("redirect: %+v", r.Response)
	}

	r, _ = f.do(t, icap.MethodREQMOD, "http://site.example/tag/1", http.Header{"Cookie": {"a=b"}, "X-Edge": {"old"}}, nil, "")
	if r.StatusCode != 200 || r.Request == nil || r.Request.Header.Get("X-Edge") != "tagged" || r.Request.Header.Get("Cookie") != "" {
		t.Errorf("header edit: ICAP %d, request %+v", r.StatusCode, r.Request)
	}

	r, _ = f.do(t, icap.MethodREQMOD, "http://cdn.example/lib.js?v=3", nil, nil, "")
	if r.StatusCode != 200 || r.Request == nil || r.Request.URL.String() != "http://mirror.lan:8080/lib.js" || r.Request.Host != "mirror.lan:8080" {
		t.Errorf("rewrite: ICAP %d, request %+v", r.StatusCode, r.Request)
	}

	r, _ = f.do(t, icap.MethodREQMOD, "http://site.example/plain", nil, nil, "")
	if r.StatusCode != 204 || r.ISTag() != tag {
		t.Errorf("pass: ICAP %d ISTag %q", r.StatusCode, r.ISTag())
	}
}

func TestRespmod(t *testing.T) {
	const page = "<html><body>hello</body></html>"
	slow := http.Header{"Save-Data": {"on"}}

	t.Run("header edit keeps the body", func(t *testing.T) {
		f := newFixture(t, upperTranscoder{})
		r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/frame/x", nil, htmlResponse(nil), page)
		if r.StatusCode != 200 || r.Response.Header.Get("X-Frame-Options") != "DENY" || body != page {
			t.Errorf("ICAP %d headers %v body %q", r.StatusCode, r.Response.Header, body)
		}
	})
	t.Run("transcode", func(t *testing.T) {
		f := newFixture(t, upperTranscoder{})
		r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(http.Header{"Etag": {`"v1"`}}), page)
		h := r.Response.Header
		if body != strings.ToUpper(page) || h.Get("X-Edge-Profile") != "upper" || h.Get("Etag") != `W/"v1"` || h.Get("Content-Length") != "" {
			t.Errorf("body %q headers %v", body, h)
		}
		if got := h.Get("Vary"); got != "Save-Data, Downlink, RTT, ECT" {
			t.Errorf("Vary %q", got)
		}
	})
	t.Run("no-transform passes unchanged", func(t *testing.T) {
		f := newFixture(t, upperTranscoder{})
		for _, cc := range []string{"no-transform", "public, No-Transform"} {
			r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(http.Header{"Cache-Control": {cc}}), page)
			// The rule's header edit still applies; the body must not change.
			if r.StatusCode != 200 || body != page || r.Response.Header.Get("X-Edge-Profile") != "upper" {
				t.Errorf("Cache-Control %q: ICAP %d body %q headers %v", cc, r.StatusCode, body, r.Response.Header)
			}
		}
		r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(http.Header{"Content-Range": {"bytes 0-30/100"}}), page)
		if r.StatusCode != 200 || body != page {
			t.Errorf("partial: ICAP %d body %q", r.StatusCode, body)
		}
	})
	t.Run("transcoder failure fails open", func(t *testing.T) {
		f := newFixture(t, upperTranscoder{fail: true})
		r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(nil), page)
		if body != page || r.Response.Header.Get("X-Edge-Profile") != "upper" {
			t.Errorf("ICAP %d body %q", r.StatusCode, body)
		}
		if !strings.Contains(f.logs.String(), "transcoder broke") {
			t.Errorf("failure not logged: %s", f.logs.String())
		}
	})
	t.Run("over the body limit passes unchanged", func(t *testing.T) {
		f := newFixture(t, upperTranscoder{})
		big := "<p>" + strings.Repeat("x", 4<<10) + "</p>"
		_, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(nil), big)
		if body != big {
			t.Errorf("big body changed (%d bytes)", len(body))
		}
		if !strings.Contains(f.logs.String(), "over max_body_bytes") {
			t.Errorf("not logged: %s", f.logs.String())
		}
	})
	t.Run("early commit", func(t *testing.T) {
		big := "<p>" + strings.Repeat("x", DefaultEarlyCommitBytes) + "</p>"
		// huge is over the MaxBodyBytes of these tests (1 MiB), mid under
		// it; their distinct lines show a lost or reordered chunk.
		var hb strings.Builder
		for i := 0; hb.Len() <= 1<<20; i++ {
			fmt.Fprintf(&hb, "<p>line %d</p>\n", i)
		}
		huge := hb.String()
		mid := huge[:600<<10]
		for _, tc := range []struct {
			name, body, length string // length "": unknown
			fail, noEarly      bool
			hold               int64 // EarlyHoldBytes
			want, outcome      string
		}{
			{"over EarlyCommitBytes", big, strconv.Itoa(len(big)), false, false, 0, strings.ToUpper(big), "adapted"},
			{"unknown length", page, "", false, false, 0, strings.ToUpper(page), "adapted"},
			{"failure sends the original", big, "", true, false, 0, big, "error"},
			{"not committed passes unchanged", big, "", false, true, 0, big, "not-committed"},
			{"at EarlyHoldBytes is adapted", mid, "", false, false, int64(len(mid)), strings.ToUpper(mid), "adapted"},
			{"over EarlyHoldBytes sends the original", mid, strconv.Itoa(len(mid)), false, false, int64(len(mid)) - 1, mid, OutcomeTooLarge},
			{"over EarlyHoldBytes of unknown length", mid, "", false, false, 1000, mid, OutcomeTooLarge},
			{"over MaxBodyBytes under EarlyHoldBytes", huge, "", false, false, 8 << 20, huge, OutcomeTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, earlyUpper{upperTranscoder{fail: tc.fail}})
				f.svc.MaxBodyBytes = 1 << 20
				f.svc.EarlyHoldBytes = tc.hold
				f.svc.Counters = &Counters{}
				h := http.Header{"Content-Length": {tc.length}}
				if tc.noEarly {
					h.Set("X-No-Early", "1")
				}
				r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(h), tc.body)
				if r.StatusCode != 200 || body != tc.want {
					t.Errorf("ICAP %d, body of %d bytes (%.20q), want %d bytes", r.StatusCode, len(body), body, len(tc.want))
				}
				rh := r.Response.Header
				if rh.Get("X-Edge-Profile") != "upper" || rh.Get("Content-Length") != "" && rh.Get("Content-Length") != strconv.Itoa(len(tc.body)) {
					t.Errorf("header %v", rh)
				}
				if committed := rh.Get("X-Early") != ""; committed == tc.noEarly {
					t.Errorf("committed early: %v, header %v", committed, rh)
				}
				if n := f.svc.Counters.Early(tc.outcome); n != 1 {
					t.Errorf("early commits with outcome %q: %d, want 1", tc.outcome, n)
				}
				if tc.outcome == OutcomeTooLarge && !strings.Contains(f.logs.String(), "reason="+OutcomeTooLarge) {
					t.Errorf("too-large pass not logged: %s", f.logs.String())
				}
			})
		}
	})
	t.Run("no transcoder: logged no-op", func(t *testing.T) {
		f := newFixture(t, nil)
		r, body := f.do(t, icap.MethodRESPMOD, "http://s.example/", slow, htmlResponse(nil), page)
		if r.StatusCode != 200 || body != page || r.Response.Header.Get("X-Edge-Profile") != "upper" {
			t.Errorf("without a transcoder: ICAP %d body %q", r.StatusCode, body)
		}
		if !strings.Contains(f.logs.String(), "transcode: no-op") || !strings.Contains(f.logs.String(), "profile=upper") {
			t.Errorf("no-op not logged: %s", f.logs.String())
		}
	})
	t.Run("fast client passes", func(t *testing.T) {
		f := newFixture(t, upperTranscoder{})
		r, _ := f.do(t, icap.MethodRESPMOD, "http://s.example/", nil, htmlResponse(nil), page)
		if r.StatusCode != 204 {
			t.Errorf("ICAP %d", r.StatusCode)
		}
	})
}

// A reload changes behaviour and the ISTag without a restart.
func TestReloadChangesISTag(t *testing.T) {
	f := newFixture(t, nil)
	r, _ := f.do(t, icap.MethodREQMOD, "http://www.blocked.example/", nil, nil, "")
	tag1 := r.ISTag()
	if r.Response == nil || r.Response.StatusCode != 403 {
		t.Fatalf("not blocked before reload")
	}
	src, _ := os.ReadFile(f.path)
	src = bytes.Replace(src, []byte(`".blocked.example"`), []byte(`".other.example"`), 1)
	if err := os.WriteFile(f.path, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.holder.Reload(); err != nil {
		t.Fatal(err)
	}
	r, _ = f.do(t, icap.MethodREQMOD, "http://www.blocked.example/", nil, nil, "")
	if r.StatusCode != 204 || r.ISTag() == tag1 || len(r.ISTag()) > 32 {
		t.Errorf("after reload: ICAP %d, ISTag %q (was %q)", r.StatusCode, r.ISTag(), tag1)
	}
}

func TestCountersAndDecisionLog(t *testing.T) {
	f := newFixture(t, nil)
	f.svc.Counters = &Counters{}
	f.svc.LogDecisions = true
	for i := 0; i < 3; i++ {
		f.do(t, icap.MethodREQMOD, "http://a.blocked.example/", nil, nil, "")
	}
	f.do(t, icap.MethodREQMOD, "http://plain.example/", nil, nil, "")
	f.do(t, icap.MethodRESPMOD, "http://s.example/", http.Header{"Save-Data": {"on"}}, htmlResponse(http.Header{"Cache-Control": {"no-transform"}}), "<p>x</p>")
	if n := f.svc.Counters.Get("block-host", policy.Block); n != 3 {
		t.Errorf("block-host count %d", n)
	}
	var b strings.Builder
	if err := f.svc.Counters.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`icapd_policy_decisions_total{rule="",action="pass",skipped="false"} 1`,
		`icapd_policy_decisions_total{rule="block-host",action="block",skipped="false"} 3`,
		`icapd_policy_decisions_total{rule="slow-html",action="pass",skipped="true"} 1`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	if logs := f.logs.String(); !strings.Contains(logs, `msg="policy decision" service=reqmod rule=block-host action=block host=a.blocked.example client=192.0.2.10`) {
		t.Errorf("decision not logged:\n%s", logs)
	}
	if got := labelValue("a\"b\\c\nd"); got != `"a\"b\\c\nd"` {
		t.Errorf("labelValue = %s", got)
	}
}
