package icap_test

import (
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// patternReader generates n bytes of a repeating, position-dependent
// pattern without holding them: the test's source is flat in memory.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func (p *patternReader) Close() error { return nil }

// streamBytes is the size of the streaming test: 1 GiB, or
// ICAP_STREAM_BYTES, or 64 MiB with -short.
func streamBytes(t *testing.T) int64 {
	if v := os.Getenv("ICAP_STREAM_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("ICAP_STREAM_BYTES: %v", err)
		}
		return n
	}
	if testing.Short() {
		return 64 << 20
	}
	return 1 << 30
}

// TestStreamingFlatMemory echoes a 1 GiB RESPMOD body through the Client
// and the Server in this process and checks that it arrives intact while
// the heap stays under 20 MB: nothing buffers the body.
func TestStreamingFlatMemory(t *testing.T) {
	size := streamBytes(t)
	s, _ := startServer(t, testMux(), nil)

	runtime.GC() // start from the live heap, without earlier tests' garbage
	var maxHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > maxHeap.Load() {
					maxHeap.Store(ms.HeapAlloc)
				}
			}
		}
	}()

	src := &patternReader{n: size}
	req := newReq(t, icap.MethodRESPMOD, s.ServiceURL("/full"), nil, httpResponse(nil))
	req.Body = src
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	want := crc32.NewIEEE()
	io.Copy(want, &patternReader{n: size})
	got := crc32.NewIEEE()
	n, err := io.Copy(got, resp.Body)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if n != size || got.Sum32() != want.Sum32() {
		t.Fatalf("echoed %d bytes crc %08x, want %d crc %08x", n, got.Sum32(), size, want.Sum32())
	}
	const limit = 20 << 20
	if h := maxHeap.Load(); h > limit {
		t.Fatalf("heap reached %d bytes while streaming %d bytes, want < %d", h, size, limit)
	}
	t.Logf("streamed %d MiB, max heap %.1f MiB", size>>20, float64(maxHeap.Load())/(1<<20))
}
