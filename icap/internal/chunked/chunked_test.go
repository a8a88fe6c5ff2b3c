package chunked

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func decode(t testing.TB, in string) (*Reader, string, error) {
	t.Helper()
	cr := NewReader(bufio.NewReaderSize(strings.NewReader(in), 16))
	b, err := io.ReadAll(cr)
	return cr, string(b), err
}

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ieof           bool
		orig           int64
		trailer        string
		err            error
	}{
		{name: "simple", in: "5\r\nhello\r\n0\r\n\r\n", want: "hello", orig: -1},
		{name: "two chunks, upper hex", in: "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", want: "abc0123456789", orig: -1},
		{name: "empty body", in: "0\r\n\r\n", want: "", orig: -1},
		{name: "ieof", in: "5\r\nhello\r\n0; ieof\r\n\r\n", want: "hello", ieof: true, orig: -1},
		{name: "ieof no space", in: "0;ieof\r\n\r\n", ieof: true, orig: -1},
		{name: "use-original-body", in: "0; use-original-body=1234\r\n\r\n", orig: 1234},
		{name: "extensions ignored", in: "5;a=b; c=\"x;y\" ;d\r\nhello\r\n0;e=f\r\n\r\n", want: "hello", orig: -1},
		{name: "bare LF", in: "5\nhello\n0\n\n", want: "hello", orig: -1},
		{name: "trailers", in: "2\r\nhi\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n", want: "hi", orig: -1, trailer: "X-A=1 X-B=2"},
		{name: "bad size", in: "g\r\n", err: ErrBadSize},
		{name: "size overflow", in: "1000000000000000\r\n", err: ErrBadSize},
		{name: "junk after size", in: "5 x\r\nhello\r\n", err: ErrBadSize},
		{name: "missing CRLF", in: "2\r\nhello\r\n", err: ErrMissingCRLF},
		{name: "bad extension", in: "0;=x\r\n\r\n", err: ErrBadExtension},
		{name: "bad use-original-body", in: "0; use-original-body=x\r\n\r\n", err: ErrBadExtension},
		{name: "unterminated quote", in: "0; a=\"x\r\n\r\n", err: ErrBadExtension},
		{name: "truncated data", in: "5\r\nhel", err: io.ErrUnexpectedEOF},
		{name: "truncated size", in: "5", err: io.ErrUnexpectedEOF},
		{name: "bad trailer", in: "0\r\nnocolon\r\n\r\n", err: ErrBadTrailer},
		{name: "line too long", in: "0;" + strings.Repeat("a", MaxLineBytes) + "\r\n\r\n", err: ErrLineTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr, got, err := decode(t, tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || cr.IEOF() != tc.ieof || cr.UseOriginalBody() != tc.orig {
				t.Fatalf("got %q ieof=%v orig=%d", got, cr.IEOF(), cr.UseOriginalBody())
			}
			var tr []string
			for _, k := range []string{"X-A", "X-B"} {
				if v := cr.Trailer().Get(k); v != "" {
					tr = append(tr, k+"="+v)
				}
			}
			if strings.Join(tr, " ") != tc.trailer {
				t.Fatalf("trailer %v", cr.Trailer())
			}
		})
	}
}

// TestRestart reads a preview, then the continuation after 100 Continue.
func TestRestart(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("4\r\nhell\r\n0\r\n\r\n3\r\no w\r\n0\r\n\r\n"))
	cr := NewReader(br)
	b, err := io.ReadAll(cr)
	if err != nil || string(b) != "hell" || cr.IEOF() {
		t.Fatalf("preview %q %v", b, err)
	}
	cr.Restart()
	b, err = io.ReadAll(cr)
	if err != nil || string(b) != "o w" || cr.Consumed() != 7 {
		t.Fatalf("rest %q %v consumed %d", b, err, cr.Consumed())
	}
}

func TestWriteToMatchesRead(t *testing.T) {
	in := "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
	cr := NewReader(bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16))
	var out bytes.Buffer
	n, err := cr.WriteTo(&out)
	if err != nil || n != 8 || out.String() != "abcdefgh" {
		t.Fatalf("WriteTo %d %q %v", n, out.String(), err)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	cw := NewWriter(bw)
	cw.Write([]byte("hello "))
	cw.Write(nil) // must not end the body
	cw.Write([]byte("world"))
	cw.Close("use-original-body=7", map[string][]string{"X-T": {"a\r\nInjected: x"}})
	bw.Flush()
	want := "6\r\nhello \r\n5\r\nworld\r\n0; use-original-body=7\r\nX-T: a  Injected: x\r\n\r\n"
	if buf.String() != want {
		t.Fatalf("wire %q, want %q", buf.String(), want)
	}
	cr, got, err := decode(t, buf.String())
	if err != nil || got != "hello world" || cr.UseOriginalBody() != 7 || cw.Written() != 11 {
		t.Fatalf("round trip %q %v", got, err)
	}
}

// FuzzChunkedReader decodes arbitrary input: it must not panic, and
// whatever decodes must survive a round trip through Writer.
func FuzzChunkedReader(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.txt")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cr := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
		data, err := io.ReadAll(io.LimitReader(cr, 1<<20))
		if err != nil || !cr.Done() {
			return
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		cw := NewWriter(bw)
		cw.Write(data)
		ext := ""
		if cr.IEOF() {
			ext = "ieof"
		}
		cw.Close(ext, cr.Trailer())
		bw.Flush()
		cr2 := NewReader(bufio.NewReader(&buf))
		data2, err := io.ReadAll(cr2)
		if err != nil || !bytes.Equal(data, data2) || cr2.IEOF() != cr.IEOF() {
			t.Fatalf("round trip: %q -> %q (%v)", data, data2, err)
		}
	})
}
