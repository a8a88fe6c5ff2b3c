package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

func init() {
	commands["eval"] = func(ctx context.Context, args []string) error {
		return runEval(ctx, args, os.Stdout, os.Stderr)
	}
}

// evalFile replays the capture at path through the tracker and evaluates
// the predictions its reports would have given.
func evalFile(ctx context.Context, path, filter string, a *aggFlags) (spand.EvalResult, track.Stats, error) {
	local, err := a.localFunc()
	if err != nil {
		return spand.EvalResult{}, track.Stats{}, err
	}
	var reports []spand.Report
	st, err := readFile(ctx, path, filter, track.Config{OnConn: func(c *track.Conn) {
		if r, ok := spand.ReportFromConn(c, local); ok {
			reports = append(reports, r)
		}
	}})
	if err != nil {
		return spand.EvalResult{}, st, err
	}
	return spand.Evaluate(reports, a.config()), st, nil
}

// runEval is `spand eval -r FILE...`: the SPAND evaluation of each capture.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("spand eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a aggFlags
	a.register(fs)
	read := fs.String("r", "", "capture `FILE` to replay (more files may follow as arguments)")
	filter := fs.String("f", "", "capture `FILTER` in tcpdump syntax")
	asJSON := fs.Bool("json", false, "print one JSON object per capture")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: spand eval [flags] -r FILE [FILE...]\n\n"+
			"Replays each capture in time order, predicts every connection's throughput\n"+
			"from the reports of the connections that ended before it started, and prints\n"+
			"the fraction of requests answered and of answers within a factor of 2.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if *read != "" {
		files = append([]string{*read}, files...)
	}
	if len(files) == 0 {
		fs.Usage()
		return errUsage
	}
	var total spand.EvalCounts
	for i, f := range files {
		res, _, err := evalFile(ctx, f, *filter, &a)
		if err != nil {
			return err
		}
		total.Requests += res.Requests
		total.Answered += res.Answered
		total.Within2x += res.Within2x
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(evalJSON(f, &res)); err != nil {
				return err
			}
			continue
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		res.WriteTable(stdout, filepath.Base(f))
	}
	if len(files) > 1 && !*asJSON {
		fmt.Fprintf(stdout, "\nall %d captures: %d requests, %d answered (%.1f%%), %d within 2x (%.1f%% of answered)\n",
			len(files), total.Requests, total.Answered, pct(total.Answered, total.Requests),
			total.Within2x, pct(total.Within2x, total.Answered))
	}
	return nil
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

type evalOut struct {
	File             string                           `json:"file"`
	Requests         int                              `json:"requests"`
	Answered         int                              `json:"answered"`
	Within2x         int                              `json:"within_2x"`
	AnsweredFraction float64                          `json:"answered_fraction"`
	Within2xFraction float64                          `json:"within_2x_fraction"`
	MedianLog2Error  float64                          `json:"median_log2_error"`
	BySource         map[string]int                   `json:"by_source"`
	ByClass          map[spand.Class]spand.EvalCounts `json:"by_class"`
	ResponseRate     spand.EvalCounts                 `json:"response_rate"`
}

func evalJSON(file string, r *spand.EvalResult) evalOut {
	return evalOut{file, r.Requests, r.Answered, r.Within2x, r.AnsweredFraction(), r.Within2xFraction(),
		r.MedianError, r.BySource, r.ByClass, r.ResponseRate}
}
