package icap_test

import (
	"net"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkIdleConnMemory opens persistent connections that each did one
// OPTIONS and then sit idle, and reports the server's memory per idle
// connection (heap and goroutine stacks; the client side is bare
// sockets). The goal is at most 30 KB per connection.
//
//	go test ./icap -run '^$' -bench IdleConnMemory -benchtime 1x
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	s := benchServer(b)
	addr := strings.TrimPrefix(s.URL, "icap://")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := []byte(crlf("OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n"))
	buf := make([]byte, 4096)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil { // the whole response fits one read
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
	b.ReportMetric(float64(used)/n, "B/idle-conn")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/idle-conn")
}
