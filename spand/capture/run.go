package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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

// LiveClockLag is how far behind wall time Run sets the tracker's clock
// when a live source was idle for its poll timeout: packets still in a
// ring block the kernel has not handed over yet (TPACKET_V3 retires a
// block after a few tens of ms) are older than now, and must not find
// their connection already ended. Records of closed connections come
// CloseLinger plus at most this plus a second (the scan interval) after
// their last packet.
const LiveClockLag = time.Second

// errTimeout is returned (wrapped) by live sources when no packet came
// within the poll timeout, so that Run can look at its context.
var errTimeout = errors.New("capture: read timeout")

// Run reads src until the end of the file, an error, or ctx is done, and
// feeds every packet filter accepts (nil: all) to t. filter is evaluated
// in user space; for live sources, set it in the kernel instead (the
// Live options) and pass nil here. At io.EOF Run returns nil; the caller
// decides whether to t.Flush(). When a live source is idle for its
// poll timeout, Run advances t's clock to wall time less LiveClockLag
// (track.Tracker.Advance); files never are idle, so offline results
// depend on the capture only.
func Run(ctx context.Context, src Source, filter *Filter, t *track.Tracker) (RunStats, error) {
	return RunProgress(ctx, src, filter, t, nil)
}

// RunProgress is Run calling progress, from the capture goroutine, every
// 1024 packets and whenever a live source was idle for its poll timeout,
// so that the caller can publish counters (t.Stats is safe to call from
// progress, not from other goroutines).
func RunProgress(ctx context.Context, src Source, filter *Filter, t *track.Tracker, progress func(RunStats)) (RunStats, error) {
	dec, err := track.NewDecoder(src.LinkType())
	if err != nil {
		return RunStats{}, fmt.Errorf("capture: %w", err)
	}
	r := &runner{ctx: ctx, done: ctx.Done(), progress: progress, filter: filter, t: t, dec: dec}
	if f, ok := src.(*File); ok && f.mem != nil {
		// A pcap file in memory: no interface call, no copy and no
		// time.Time per packet.
		for {
			data, ts, length, err := f.mem.next()
			if err != nil {
				return r.end(err)
			}
			if err := r.packet(data, length, ts); err != nil {
				return r.st, err
			}
		}
	}
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, errTimeout) {
			// Live and idle: move the tracker's clock on with wall
			// time, so that connections that closed or went idle are
			// reported though no packet comes to move it.
			t.Advance(time.Now().Add(-LiveClockLag).UnixNano())
			if progress != nil {
				progress(r.st)
			}
			select {
			case <-r.done:
				return r.st, ctx.Err()
			default:
				continue
			}
		}
		if err != nil {
			return r.end(err)
		}
		if err := r.packet(data, ci.Length, ci.Timestamp.UnixNano()); err != nil {
			return r.st, err
		}
	}
}

// runner is the state of one RunProgress.
type runner struct {
	st       RunStats
	ctx      context.Context
	done     <-chan struct{}
	progress func(RunStats)
	filter   *Filter
	t        *track.Tracker
	dec      *track.Decoder
}

// packet handles one packet read: counted, every 1024 a progress call
// and a look at the context (its error is returned), filtered, tracked.
func (r *runner) packet(data []byte, length int, ts int64) error {
	r.st.Read++
	if r.st.Read&1023 == 0 {
		if r.progress != nil {
			r.progress(r.st)
		}
		select {
		case <-r.done:
			return r.ctx.Err()
		default:
		}
	}
	if r.filter != nil && !r.filter.Match(data, length) {
		r.st.Filtered++
		return nil
	}
	r.t.Frame(r.dec, data, ts)
	return nil
}

// end is RunProgress's result for the read error err: the end of the
// file (cut short or not) is not an error.
func (r *runner) end(err error) (RunStats, error) {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		r.st.CutShort = true
		return r.st, nil
	case errors.Is(err, io.EOF):
		return r.st, nil
	}
	return r.st, fmt.Errorf("capture: read: %w", err)
}
