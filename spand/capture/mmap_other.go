//go:build !unix

package capture

import (
	"errors"
	"os"
)

// mapFile is not available here: OpenFile streams the file instead.
func mapFile(f *os.File, size int) ([]byte, func() error, error) {
	return nil, nil, errors.ErrUnsupported
}
