package congestion

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime returns the process's user+system CPU time (getrusage), which
// includes the kernel's TCP work on both ends of the loopback connection.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWrite compares writing through a Conn with plain writes to the
// same kind of loopback TCP connection (cubic, 64 KiB writes, a reader
// draining the other end in the same process). Besides ns/op and MB/s it
// reports cpu-ns/MB, the CPU time of the whole process per megabyte: the
// overhead target is a Conn/plain ratio of cpu-ns/MB of at most 1.05. A
// single benchmark run of each is too noisy on a shared machine to show
// it (ratios from 0.70 to 1.54); bench/cm/overhead.sh measures it with
// many short interleaved pairs and the median of their ratios.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"plain", "conn", "conn16k"} {
		b.Run(mode, func(b *testing.B) {
			client, server := loopbackPair(b)
			for _, c := range []*net.TCPConn{client, server} {
				rc, _ := c.SyscallConn()
				if err := control(rc, func(fd int) error {
					return unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic")
				}); err != nil {
					b.Fatal(err)
				}
			}
			var w io.Writer = server
			if mode != "plain" {
				cfg := ConnConfig{CongestionControl: "cubic"}
				if mode == "conn16k" {
					// A kernel backlog of 16 KiB instead of the default
					// 64 KiB.
					cfg.NotSentLowat = 16 << 10
				}
				c, err := NewConn(NewManager(Config{NewController: func(c ControllerConfig) Controller {
					return ValidateWindow(NewAIMD(c), c.MSS)
				}}), server, cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				w = c
			}
			done := make(chan int64)
			go func() {
				n, _ := io.Copy(io.Discard, client)
				done <- n
			}()
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for range b.N {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			server.CloseWrite()
			<-done
			b.ReportMetric(float64(cpu.Nanoseconds())/(float64(b.N)*float64(len(buf))/1e6), "cpu-ns/MB")
		})
	}
}
