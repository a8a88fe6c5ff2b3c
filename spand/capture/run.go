package capture

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// RunStats counts what Run read.
type RunStats struct {
	Read     uint64 // packets read from the source
	Filtered uint64 // packets the filter rejected (user-space filtering only)
}

// errTimeout is returned (wrapped) by live sources when no packet came
// within the poll timeout, so that Run can look at its context.
var errTimeout = errors.New("capture: read timeout")

// errEOF is io.EOF by another name for sources that end (libpcap files).
var errEOF = io.EOF

// Run reads src until the end of the file, an error, or ctx is done, and
// feeds every packet filter accepts (nil: all) to t. filter is evaluated
// in user space; for live sources, set it in the kernel instead (the
// Live options) and pass nil here. At io.EOF Run returns nil; the caller
// decides whether to t.Flush().
func Run(ctx context.Context, src Source, filter *Filter, t *track.Tracker) (RunStats, error) {
	var st RunStats
	dec, err := track.NewDecoder(src.LinkType())
	if err != nil {
		return st, fmt.Errorf("capture: %w", err)
	}
	done := ctx.Done()
	for {
		data, ci, err := src.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return st, nil
			}
			if errors.Is(err, errTimeout) {
				select {
				case <-done:
					return st, ctx.Err()
				default:
					continue
				}
			}
			return st, fmt.Errorf("capture: read: %w", err)
		}
		st.Read++
		if st.Read&1023 == 0 {
			select {
			case <-done:
				return st, ctx.Err()
			default:
			}
		}
		if filter != nil && !filter.Match(data, ci.Length) {
			st.Filtered++
			continue
		}
		t.Frame(dec, data, ci.Timestamp.UnixNano())
	}
}
