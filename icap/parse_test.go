package icap_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
)

var update = flag.Bool("update", false, "rewrite the expected output of golden files in testdata")

const goldenSep = "\n----------\n"

// loadVector reads a testdata vector: the wire text with LF line ends
// (turned into CRLF, as on the wire), then goldenSep and the expected
// description.
func loadVector(t testing.TB, path string) (wire []byte, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, exp, _ := strings.Cut(string(b), goldenSep)
	return []byte(strings.ReplaceAll(in, "\n", "\r\n")), exp
}

func describeHeader(b *strings.Builder, indent string, h http.Header) {
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(b, "%s%s: %q\n", indent, k, h[k])
	}
}

// describe renders a parsed request (and its body) for golden comparison.
func describe(r *icap.Request, body []byte, err error) string {
	var b strings.Builder
	if err != nil && r == nil {
		fmt.Fprintf(&b, "error: status %d: %v\n", icap.StatusForError(err), err)
		return b.String()
	}
	fmt.Fprintf(&b, "method: %s\nurl: %s\n", r.Method, r.URL)
	if err != nil {
		fmt.Fprintf(&b, "error: status %d: %v\n", icap.StatusForError(err), err)
		return b.String()
	}
	fmt.Fprintf(&b, "encapsulated: %s\npreview: %d\nallow: 204=%v 206=%v trailers=%v\nclose: %v\nclient-ip: %q\n",
		r.Encapsulated, r.Preview, r.Allow204, r.Allow206, r.AllowTrailers, r.Close, r.ClientIP)
	b.WriteString("icap-header:\n")
	describeHeader(&b, "  ", r.Header)
	if q := r.Request; q != nil {
		fmt.Fprintf(&b, "http-request: %s %s %s host=%q content-length=%d\n", q.Method, q.URL, q.Proto, q.Host, q.ContentLength)
		describeHeader(&b, "  ", q.Header)
	}
	if p := r.Response; p != nil {
		fmt.Fprintf(&b, "http-response: %s %q content-length=%d\n", p.Proto, p.Status, p.ContentLength)
		describeHeader(&b, "  ", p.Header)
	}
	fmt.Fprintf(&b, "body: %q\nieof: %v\n", body, r.IEOF())
	if len(r.Trailer) > 0 {
		b.WriteString("trailer:\n")
		describeHeader(&b, "  ", r.Trailer)
	}
	if r.ICAPTrailer != nil {
		b.WriteString("icap-trailer:\n")
		describeHeader(&b, "  ", r.ICAPTrailer)
	}
	return b.String()
}

func parseWire(wire []byte) (*icap.Request, []byte, error) {
	r, err := icap.ReadRequest(bufio.NewReader(bytes.NewReader(wire)))
	if err != nil {
		return r, nil, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return r, body, fmt.Errorf("read body: %w", err)
	}
	return r, body, nil
}

// TestReadRequestGolden parses every vector in testdata/requests: the
// RFC 3507 section 4.5, 4.8.3, 4.9.2 and 4.10.2 examples, previews, chunk
// extensions and trailers, hop-by-hop headers, and malformed requests with
// the status code each one gets.
func TestReadRequestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/requests/*.txt")
	if len(files) < 20 {
		t.Fatalf("only %d vectors in testdata/requests", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			wire, want := loadVector(t, f)
			r, body, err := parseWire(wire)
			got := describe(r, body, err)
			if *update {
				in, _, _ := strings.Cut(string(must(os.ReadFile(f))), goldenSep)
				if err := os.WriteFile(f, []byte(in+goldenSep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			bad := strings.HasPrefix(filepath.Base(f), "bad-") || strings.HasPrefix(filepath.Base(f), "unknown-") ||
				strings.HasPrefix(filepath.Base(f), "version-") || strings.HasPrefix(filepath.Base(f), "missing-") ||
				strings.HasPrefix(filepath.Base(f), "lowercase-") || strings.HasPrefix(filepath.Base(f), "truncated-")
			if bad != (err != nil) {
				t.Errorf("error = %v, want an error: %v", err, bad)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestStatusForError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{icap.ErrHeaderTooLarge, 400},
		{icap.ErrMalformed, 400},
		{icap.ErrBadEncapsulated, 400},
		{icap.ErrUnknownMethod, 501},
		{icap.ErrVersion, 505},
		{&icap.ProtocolError{Status: 405, What: "x"}, 405},
		{fmt.Errorf("wrapped: %w", &icap.ProtocolError{Status: 505, What: "v", Err: icap.ErrVersion}), 505},
		{io.EOF, 0},
		{os.ErrDeadlineExceeded, 408},
		{errors.New("other"), 400},
	} {
		if got := icap.StatusForError(tc.err); got != tc.want {
			t.Errorf("StatusForError(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
