package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"text/tabwriter"
	"time"

	"github.com/edgeadapt/edgeadapt/spand"
)

// DefaultServer is the server `spand query` asks when neither -server nor
// SPAND_SERVER says otherwise.
const DefaultServer = "http://127.0.0.1:7070"

func init() {
	commands["query"] = func(ctx context.Context, args []string) error {
		return runQuery(ctx, args, os.Stdout, os.Stderr)
	}
}

// runQuery is `spand query [ADDR]`: the prediction for ADDR (every class,
// or -class), or with no ADDR what the server knows.
func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("spand query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("SPAND_SERVER")
	if def == "" {
		def = DefaultServer
	}
	server := fs.String("server", def, "performance server `URL` (or set SPAND_SERVER)")
	class := fs.String("class", "", "one `CLASS` only: bulk, web, interactive or realtime")
	source := fs.String("source", "", "without ADDR, list one `SOURCE` only: host (remote hosts), local (LAN clients), prefix or localprefix (with -local-prefix)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	limit := fs.Int("limit", spand.DefaultHostsLimit, "entries to list without ADDR")
	timeout := fs.Duration("timeout", 5*time.Second, "time allowed for the server's answer")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: spand query [flags] [ADDR]\n\n"+
			"With ADDR, prints the server's prediction for that host; without, what the\nserver knows.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &spand.Client{BaseURL: *server, CacheTTL: -1}

	var ps []spand.Prediction
	if fs.NArg() == 0 {
		var err error
		if ps, err = c.HostsWhere(ctx, *limit, *source, spand.Class(*class)); err != nil {
			return err
		}
	} else {
		addr, err := netip.ParseAddr(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		classes := spand.Classes
		if *class != "" {
			cl, err := spand.ParseClass(*class)
			if err != nil {
				return err
			}
			classes = []spand.Class{cl}
		}
		for _, cl := range classes {
			p, err := c.Predict(ctx, addr, cl)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ps)
	}
	return writePredictions(stdout, ps)
}

// writePredictions prints predictions as an aligned table.
func writePredictions(w io.Writer, ps []spand.Prediction) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tKEY\tCLASS\tTHROUGHPUT\tP25..P75\tRTT\tRTT MIN\tLOSS\tREPORTS\tAGE")
	for _, p := range ps {
		if !p.Known() {
			fmt.Fprintf(tw, "none\t%s\t%s\t-\t-\t-\t-\t-\t0\t-\n", p.Addr, p.Class)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s..%s\t%.1f ms\t%.1f ms\t%.1f%%\t%d\t%s\n",
			p.Source, p.Key, p.Class, rate(p.Throughput), rate(p.ThroughputP25), rate(p.ThroughputP75),
			p.RTT, p.RTTMin, 100*p.Loss, p.Reports, time.Duration(p.Age*float64(time.Second)).Round(time.Second).String())
	}
	return tw.Flush()
}

// rate formats bytes/s with a decimal unit.
func rate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.2f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", bps)
}
