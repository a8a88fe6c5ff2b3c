package compress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept string
		pref   []string
		want   string
	}{
		{"", nil, Identity},
		{"gzip", nil, Gzip},
		{"gzip, deflate, br", nil, Brotli},
		{"gzip, deflate, br, zstd", nil, Brotli},
		{"gzip, deflate, br, zstd", []string{Zstd, Brotli, Gzip}, Zstd},
		{"br;q=0.5, gzip", nil, Gzip},
		{"br;q=0, *", nil, Zstd},
		{"*;q=0", nil, Identity},
		{"x-gzip", nil, Gzip},
		{"GZIP;Q=0.8, BR;q=0.9", nil, Brotli},
		{"gzip;q=bogus", nil, Identity},
		{"deflate, compress", nil, Identity},
	}
	for _, tt := range tests {
		if got := Negotiate(tt.accept, tt.pref); got != tt.want {
			t.Errorf("Negotiate(%q, %v) = %q, want %q", tt.accept, tt.pref, got, tt.want)
		}
	}
}

func encode(t testing.TB, coding string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, coding)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTripCorpus(t *testing.T) {
	dir := testenv.Corpus(t, "html")
	src, err := os.ReadFile(filepath.Join(dir, "sample_jquery.js"))
	if err != nil {
		t.Fatal(err)
	}
	// Twice, so that the second round runs on pooled encoders.
	for _, c := range []string{Identity, Gzip, Brotli, Zstd, Gzip, Brotli, Zstd} {
		enc := encode(t, c, src)
		if c != Identity && len(enc) > len(src)/3 {
			t.Errorf("%s: %d bytes from %d, want at least 3:1 on jQuery", c, len(enc), len(src))
		}
		r, err := NewReader(bytes.NewReader(enc), c, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s: round trip differs (%d vs %d bytes)", c, len(got), len(src))
		}
	}
}

func TestUnsupported(t *testing.T) {
	if _, err := NewReader(bytes.NewReader(nil), "compress", Limits{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NewReader(compress) err = %v, want ErrUnsupported", err)
	}
	if _, err := NewWriter(io.Discard, "deflate"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("NewWriter(deflate) err = %v, want ErrUnsupported", err)
	}
}

// gzipBomb returns a gzip file that decodes to n zero bytes (n a multiple
// of 1 MiB): one gzip -9 member of 1 MiB of zeros (about 1 KB with the
// standard library's deflate, a 1000:1 ratio) repeated, as
// RFC 1952 allows. It builds a 1 GiB bomb in milliseconds, where
// compressing 1 GiB takes 20 s on a loaded machine.
func gzipBomb(t testing.TB, n int64) []byte {
	var member bytes.Buffer
	w, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), int(n>>20))
}

// TestGzipBomb decodes a real 1 GiB gzip bomb (about 1 MB compressed) and
// checks that both limits stop it early.
func TestGzipBomb(t *testing.T) {
	bomb := gzipBomb(t, 1<<30)
	t.Logf("bomb: 1 GiB of zeros in %d gzip bytes", len(bomb))
	tests := []struct {
		name    string
		lim     Limits
		limit   string
		maxSeen int64 // most decoded bytes allowed before the stop
	}{
		{"ratio", Limits{}, "ratio", 4 << 20},
		{"size", Limits{MaxDecodedBytes: 512 << 10, MaxRatio: 1 << 40}, "size", 512<<10 + 1},
		// Without limits the bomb really decodes to 1 GiB.
		{"unlimited", Limits{MaxDecodedBytes: 2 << 30, MaxRatio: 1 << 40}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(bomb), Gzip, tt.lim)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, r)
			if tt.name == "unlimited" {
				if err != nil || n != 1<<30 {
					t.Fatalf("decoded %d bytes, err %v; want the whole 1 GiB", n, err)
				}
				return
			}
			var be *BombError
			if !errors.As(err, &be) || !errors.Is(err, ErrBomb) {
				t.Fatalf("err = %v after %d bytes, want *BombError", err, n)
			}
			if be.Limit != tt.limit {
				t.Errorf("limit = %q, want %q", be.Limit, tt.limit)
			}
			if be.Decoded > tt.maxSeen {
				t.Errorf("decoded %d bytes before stopping", be.Decoded)
			}
			// The error is sticky.
			if _, err2 := r.Read(make([]byte, 10)); !errors.Is(err2, ErrBomb) {
				t.Errorf("second read err = %v", err2)
			}
		})
	}
}

func TestBombOtherCodings(t *testing.T) {
	zeros := make([]byte, 32<<20)
	for _, c := range []string{Brotli, Zstd} {
		enc := encode(t, c, zeros)
		r, err := NewReader(bytes.NewReader(enc), c, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrBomb) {
			t.Errorf("%s: %d compressed bytes of 32 MiB zeros: err = %v, want ErrBomb", c, len(enc), err)
		}
	}
}

// A small page that compresses extremely well is not a bomb.
func TestSmallHighRatioIsNotBomb(t *testing.T) {
	page := bytes.Repeat([]byte(" "), 512<<10)
	r, err := NewReader(bytes.NewReader(encode(t, Gzip, page)), Gzip, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || len(got) != len(page) {
		t.Fatalf("got %d bytes, err %v", len(got), err)
	}
}

func TestCorruptStream(t *testing.T) {
	enc := encode(t, Gzip, bytes.Repeat([]byte("hello world "), 1000))
	enc[len(enc)/2] ^= 0xff
	r, err := NewReader(bytes.NewReader(enc), Gzip, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err == nil {
		t.Error("corrupt gzip decoded without error")
	}
}

// repetitiveMarkup returns about n bytes of a legitimate but highly
// compressible page: table rows that differ only in their numbers.
func repetitiveMarkup(n int) []byte {
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html><html><body><table>\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<tr class=\"row\"><td class=\"price\">%d.00</td><td><a href=\"/item/%d\">Item %d</a></td></tr>\n", i%100, i, i)
	}
	b.WriteString("</table></body></html>\n")
	return b.Bytes()
}

// TestEarlyRatio checks the early ratio limit (earlyFactor×MaxRatio past
// earlySlack): a tag-dense brotli or zstd bomb stops within 256 KB
// decoded instead of 1 MB, a gzip one still at the 1 MB limit (its reader
// reads ahead), while the corpus pages and a repetitive page decode whole
// in every coding.
func TestEarlyRatio(t *testing.T) {
	dir := testenv.Corpus(t, "html")
	bomb := bytes.Repeat([]byte("<a>"), 2<<20/3) // over ratioSlack: the 1 MB rule stops it too
	tests := []struct {
		name       string
		data       []byte
		maxDecoded int64 // a bomb must stop by then; 0: decodes whole
	}{
		{name: "tag bomb", data: bomb, maxDecoded: 256 << 10},
		{name: "repetitive 200 KB page", data: repetitiveMarkup(200 << 10)},
		{name: "repetitive 900 KB page", data: repetitiveMarkup(900 << 10)},
		{name: "60 KB of spaces", data: bytes.Repeat([]byte(" "), earlySlack-4<<10)},
	}
	for _, f := range []string{"sample_amazon.html", "sample_bbc.html", "sample_blogpost.html", "sample_wikipedia.html", "sample_bootstrap.css", "sample_jquery.js"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name       string
			data       []byte
			maxDecoded int64
		}{name: f, data: b})
	}
	for _, tt := range tests {
		for _, c := range []string{Gzip, Brotli, Zstd} {
			t.Run(tt.name+"/"+c, func(t *testing.T) {
				enc := encode(t, c, tt.data)
				r, err := NewReader(bytes.NewReader(enc), c, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				n, err := io.Copy(io.Discard, r)
				t.Logf("%d bytes from %d (%d:1): %d decoded, err %v", len(tt.data), len(enc), len(tt.data)/len(enc), n, err)
				if tt.maxDecoded == 0 {
					if err != nil || n != int64(len(tt.data)) {
						t.Fatalf("decoded %d of %d bytes, err %v; want all", n, len(tt.data), err)
					}
					return
				}
				var be *BombError
				if !errors.As(err, &be) || be.Limit != "ratio" {
					t.Fatalf("err = %v, want a ratio *BombError", err)
				}
				limit := tt.maxDecoded
				if c == Gzip {
					limit = ratioSlack + 64<<10 // the 4 KB read-ahead hides the ratio until 1 MB
				}
				if be.Decoded > limit {
					t.Errorf("stopped after %d decoded bytes, want at most %d", be.Decoded, limit)
				}
			})
		}
	}
}
