//go:build unix

package capture

import (
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f read-only. The mapping stays
// valid after f is closed, until unmap.
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED|mapPopulate)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
