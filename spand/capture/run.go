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
	// CutShort is set when a file ended in the middle of a packet record
	// (a capture still being written, or a truncated copy): what came
	// before was tracked.
	CutShort bool
}

// errTimeout is returned (wrapped) by live sources when no packet came
// within the poll timeout, so that Run can look at its context.
var errTimeout = errors.New("capture: read timeout")

// Run reads src until the end of the file, an error, or ctx is done, and
// feeds every packet filter accepts (nil: all) to t. filter is evaluated
// in user space; for live sources, set it in the kernel instead (the
// Live options) and pass nil here. At io.EOF Run returns nil; the caller
// decides whether to t.Flush().
func Run(ctx context.Context, src Source, filter *Filter, t *track.Tracker) (RunStats, error) {
	return RunProgress(ctx, src, filter, t, nil)
}

// RunProgress is Run calling progress, from the capture goroutine, every
// 1024 packets and whenever a live source was idle for its poll timeout,
// so that the caller can publish counters (t.Stats is safe to call from
// progress, not from other goroutines).
func RunProgress(ctx context.Context, src Source, filter *Filter, t *track.Tracker, progress func(RunStats)) (RunStats, error) {
	var st RunStats
	dec, err := track.NewDecoder(src.LinkType())
	if err != nil {
		return st, fmt.Errorf("capture: %w", err)
	}
	done := ctx.Done()
	if f, ok := src.(*File); ok && f.mem != nil {
		return runMem(ctx, f.mem, filter, t, dec, progress)
	}
	for {
		data, ci, err := src.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				st.CutShort = true
				return st, nil
			}
			if errors.Is(err, io.EOF) {
				return st, nil
			}
			if errors.Is(err, errTimeout) {
				if progress != nil {
					progress(st)
				}
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
			if progress != nil {
				progress(st)
			}
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

// runMem is RunProgress's loop for a pcap file in memory: no interface
// call, no copy and no time.Time per packet.
func runMem(ctx context.Context, m *pcapMem, filter *Filter, t *track.Tracker, dec *track.Decoder, progress func(RunStats)) (RunStats, error) {
	var st RunStats
	done := ctx.Done()
	for {
		data, ts, length, err := m.next()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				st.CutShort = true
				return st, nil
			}
			if err == io.EOF {
				return st, nil
			}
			return st, fmt.Errorf("capture: read: %w", err)
		}
		st.Read++
		if st.Read&1023 == 0 {
			if progress != nil {
				progress(st)
			}
			select {
			case <-done:
				return st, ctx.Err()
			default:
			}
		}
		if filter != nil && !filter.Match(data, length) {
			st.Filtered++
			continue
		}
		t.Frame(dec, data, ts)
	}
}
