package chunked

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// encoded returns size bytes of body in chunks of chunk bytes, chunked
// and terminated.
func encoded(tb testing.TB, size, chunk int) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	cw := NewWriter(bw)
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	for len(body) > 0 {
		n := min(chunk, len(body))
		if _, err := cw.Write(body[:n]); err != nil {
			tb.Fatal(err)
		}
		body = body[n:]
	}
	if err := cw.Close("", nil); err != nil {
		tb.Fatal(err)
	}
	bw.Flush()
	return out.Bytes()
}

// BenchmarkDecode measures the body path of a server reading a request
// body: the decoder's WriteTo into a destination with no buffer of its
// own, for the chunk sizes clients send (Squid: up to 64 KB; icapbench:
// the whole body in one chunk). No allocation per body is allowed.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct{ size, chunk int }{
		{10 << 10, 10 << 10}, {1 << 20, 4 << 10}, {1 << 20, 64 << 10}, {1 << 20, 1 << 20},
	} {
		b.Run(fmt.Sprintf("body=%d/chunk=%d", c.size, c.chunk), func(b *testing.B) {
			wire := encoded(b, c.size, c.chunk)
			rd := bytes.NewReader(wire)
			br := bufio.NewReaderSize(rd, 32<<10)
			var cr Reader
			b.SetBytes(int64(c.size))
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(wire)
				br.Reset(rd)
				cr.Reset(br)
				n, err := cr.WriteTo(io.Discard)
				if err != nil || n != int64(c.size) {
					b.Fatalf("WriteTo = %d, %v; want %d", n, err, c.size)
				}
			}
		})
	}
}

// BenchmarkEncode measures the encoder writing a body through a 32 KB
// bufio.Writer (the server's), one chunk per Write.
func BenchmarkEncode(b *testing.B) {
	for _, c := range []struct{ size, write int }{{10 << 10, 10 << 10}, {1 << 20, 32 << 10}, {1 << 20, 256 << 10}} {
		b.Run(fmt.Sprintf("body=%d/write=%d", c.size, c.write), func(b *testing.B) {
			body := make([]byte, c.size)
			bw := bufio.NewWriterSize(io.Discard, 32<<10)
			var cw Writer
			b.SetBytes(int64(c.size))
			b.ReportAllocs()
			for b.Loop() {
				cw.Reset(bw)
				for p := body; len(p) > 0; p = p[min(c.write, len(p)):] {
					if _, err := cw.Write(p[:min(c.write, len(p))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := cw.Close("", nil); err != nil {
					b.Fatal(err)
				}
				bw.Flush()
			}
		})
	}
}
