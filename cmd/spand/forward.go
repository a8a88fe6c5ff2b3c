package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

// DefaultReportWait is how long a capture node keeps trying to deliver
// its queued reports when it stops (end of a -r file, or shutdown).
const DefaultReportWait = 30 * time.Second

// forwardFlags are the flags of -report-to: a capture node that sends its
// reports to a central performance server instead of (or besides)
// answering requests itself.
type forwardFlags struct {
	url       string
	tokenFile string
	every     time.Duration
	queue     int
	batch     int
	wait      time.Duration
}

var forwardOpts forwardFlags

func (f *forwardFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "report-to", "", "send this node's reports to the spand server at `URL` (POST /v1/reports), batched, retried while it is unreachable")
	fs.StringVar(&f.tokenFile, "report-token-file", "", "bearer token for -report-to in `FILE` (or set SPAND_REPORT_TOKEN)")
	fs.DurationVar(&f.every, "report-every", spand.DefaultFlushInterval, "interval between two sends (and retries) to -report-to")
	fs.IntVar(&f.queue, "report-queue", spand.DefaultMaxQueue, "reports held for -report-to while it is unreachable; beyond, new ones are dropped and counted")
	fs.IntVar(&f.batch, "report-batch", spand.DefaultMaxBatch, "reports per POST to -report-to")
	fs.DurationVar(&f.wait, "report-wait", DefaultReportWait, "at the end of a -r file or at shutdown, how long to keep retrying -report-to")
}

func init() { flagHooks = append(flagHooks, forwardOpts.register) }

// forwarder turns connection records into reports and sends them to the
// central server through a spand.Reporter.
type forwarder struct {
	rp    *spand.Reporter
	local spand.LocalFunc
	log   *slog.Logger
	made  atomic.Uint64 // reports made from records
}

// activeForwarder is the running forwarder, for /metrics (nil: none).
var activeForwarder atomic.Pointer[forwarder]

// newForwarder returns the forwarder the flags ask for, or nil without
// -report-to. local is the -local setting shared with the server mode.
func (f *forwardFlags) newForwarder(local spand.LocalFunc, log *slog.Logger) (*forwarder, error) {
	if f.url == "" {
		return nil, nil
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-report-to %q: want http://HOST:PORT or https://HOST:PORT", f.url)
	}
	tok := os.Getenv("SPAND_REPORT_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-report-token-file: %w", err)
		}
		if tok = strings.TrimSpace(string(b)); tok == "" {
			return nil, fmt.Errorf("-report-token-file %s is empty", f.tokenFile)
		}
	}
	return &forwarder{
		rp: &spand.Reporter{
			Client:        &spand.Client{BaseURL: f.url, Token: tok, MaxBatch: f.batch},
			FlushInterval: f.every,
			MaxQueue:      f.queue,
			ShutdownWait:  f.wait,
			Logger:        log,
		},
		local: local,
		log:   log,
	}, nil
}

// conn queues the report of a connection record (final or periodic), if
// it makes one. Safe for concurrent use.
func (fw *forwarder) conn(c *track.Conn) {
	if r, ok := spand.ReportFromConn(c, fw.local); ok {
		fw.made.Add(1)
		fw.rp.Add(r)
	}
}

// run sends what is queued every -report-every until ctx is done, then
// keeps trying for -report-wait to deliver the rest (spand.Reporter.Run),
// and logs the counters. It returns an error when reports were left
// undelivered.
func (fw *forwarder) run(ctx context.Context) error {
	activeForwarder.Store(fw)
	fw.rp.Run(ctx)
	activeForwarder.CompareAndSwap(fw, nil)
	st := fw.rp.Stats()
	fw.log.Info("reports forwarded", "to", fw.rp.Client.BaseURL, "made", fw.made.Load(), "sent", st.Sent,
		"queued", st.Queued, "dropped", st.Dropped, "rejected", st.Rejected, "failed_attempts", st.Failures)
	if st.Dropped > 0 {
		fw.log.Warn("reports dropped: the forwarding queue was full (raise -report-queue)", "dropped", st.Dropped)
	}
	if st.Queued > 0 {
		return fmt.Errorf("-report-to: %d reports not delivered after trying for %v", st.Queued, fw.rp.ShutdownWait)
	}
	return nil
}

// writeForwardMetrics adds the forwarder's counters to /metrics (nothing
// without -report-to).
func writeForwardMetrics(w io.Writer) {
	if fw := activeForwarder.Load(); fw != nil {
		fw.rp.WriteMetrics(w)
	}
}
