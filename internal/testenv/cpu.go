package testenv

import (
	"syscall"
	"time"
)

// CPUTime returns the process's user+system CPU time (getrusage). On a
// shared machine wall-clock rates swing with the load of others; the CPU
// a benchmark's own process spends per operation swings much less, so
// benchmarks report both.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
