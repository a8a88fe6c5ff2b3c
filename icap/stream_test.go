package icap_test

import (
	"hash/crc32"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
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
// ICAP_STREAM_BYTES, or 64 MiB with -short, or 32 MiB under the race
// detector (which instruments every byte the pattern generator writes and
// the server moves: 1 GiB would take many minutes).
func streamBytes(t *testing.T) int64 {
	if v := os.Getenv("ICAP_STREAM_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("ICAP_STREAM_BYTES: %v", err)
		}
		return n
	}
	if raceEnabled {
		return 32 << 20
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

// TestEchoLargeChunks echoes bodies made of chunks larger than the read
// buffer, which the server sends back with splice(2) (response
// SpliceChunk), with and without a preview before them, several times on
// one connection, and checks every byte and the chunk framing.
func TestEchoLargeChunks(t *testing.T) {
	s, _ := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	part := func(n int, seed byte) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7+i/251)
		}
		return string(b)
	}
	tests := []struct {
		name    string
		preview bool // the first part is a Preview
		parts   []string
	}{
		{"one 3 MB chunk", false, []string{part(3<<20+5, 1)}},
		{"mixed chunks", false, []string{part(100, 2), part(40000, 3), part(1<<20, 4), part(70000, 5), part(5, 6)}},
		{"after a preview", true, []string{part(1024, 7), part(2<<20, 8)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Join(tt.parts, "")
			head, first, rest := respmod("/full", "", body, ""), chunks("", tt.parts...), ""
			if tt.preview {
				head = respmod("/full", "Preview: "+strconv.Itoa(len(tt.parts[0]))+"\n", body, "")
				first, rest = chunks("", tt.parts[0]), chunks("", tt.parts[1:]...)
			}
			cont := make(chan struct{})
			sent := make(chan error, 1)
			go func() { // write while the response is read: both may be large
				_, err := io.WriteString(rc.c, head+first)
				if err == nil && tt.preview {
					<-cont
					_, err = io.WriteString(rc.c, rest)
				}
				sent <- err
			}()
			if tt.preview {
				if r := rc.read(); r.Status != 100 {
					t.Fatalf("status %d, want 100", r.Status)
				}
				close(cont)
			}
			r := rc.read()
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if r.Status != 200 || len(r.Body) != len(body) || string(r.Body) != body {
				t.Fatalf("status %d, %d body bytes back, want %d identical", r.Status, len(r.Body), len(body))
			}
		})
	}
}

// TestEchoLargeChunkBrokenOff checks that a large chunk the client breaks
// off is not echoed as a complete body: the response is not terminated
// and the transaction is recorded with an error.
func TestEchoLargeChunkBrokenOff(t *testing.T) {
	s, log := startServer(t, testMux(), nil)
	rc := dialRaw(t, s.URL)
	data := strings.Repeat("x", 300000)
	go func() {
		io.WriteString(rc.c, respmod("/full", "", data, "")+strconv.FormatInt(1<<20, 16)+"\r\n"+data)
		rc.c.(*net.TCPConn).CloseWrite()
	}()
	if r, err := rc.tryRead(); err == nil {
		t.Fatalf("complete response %d with %d bytes for a broken body", r.Status, len(r.Body))
	}
	if txs := log.waitFor(1); txs[0].Err == nil {
		t.Fatalf("transaction without error: %+v", txs[0])
	}
}
