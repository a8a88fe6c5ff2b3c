package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	edgeadapt "github.com/edgeadapt/edgeadapt"
	"github.com/edgeadapt/edgeadapt/internal/icapd"
	"github.com/edgeadapt/edgeadapt/policy"
)

// Exit statuses of the subcommands.
const (
	exitOK    = 0
	exitError = 1 // an invalid policy, an unreadable file
	exitUsage = 2 // bad flags
)

// dispatch runs the command-line tool args name, if any, and reports
// whether it did; otherwise icapd runs as the daemon. The tools are:
//
//	icapd -check-policy FILE          validate a policy and exit
//	icapd explain -url URL ...        which rule matches a message, and why
//	icapd transcode -profile NAME ... apply a policy profile to a file
//
// -check-policy must come first; the daemon's flags do not apply to it.
func dispatch(args []string, stdout, stderr io.Writer) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch a := strings.TrimPrefix(args[0], "-"); {
	case args[0] == "explain":
		return explainMain(args[1:], stdout, stderr), true
	case args[0] == "transcode":
		return transcodeMain(args[1:], stdout, stderr), true
	case a == "-check-policy" || a == "check-policy" || strings.HasPrefix(a, "check-policy=") || strings.HasPrefix(a, "-check-policy="):
		return checkMain(args, stdout, stderr), true
	}
	return 0, false
}

// checkMain is `icapd -check-policy FILE`: it loads and validates FILE
// and prints every problem found, each as FILE:LINE: KEY: message. It
// exits 0 for a valid policy (printing its warnings, if any), 1 for an
// invalid one and 2 for bad usage.
func checkMain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("icapd -check-policy", flag.ContinueOnError)
	fset.SetOutput(stderr)
	file := fset.String("check-policy", "", "policy file to validate")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: icapd -check-policy FILE\n\nValidates FILE and exits non-zero if it has errors.\n")
	}
	if err := fset.Parse(args); err != nil {
		return exitUsage
	}
	if *file == "" || fset.NArg() > 0 {
		fset.Usage()
		return exitUsage
	}
	p, err := policy.LoadFile(*file)
	if err != nil {
		n := 1
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			n = len(j.Unwrap())
		}
		fmt.Fprintf(stderr, "%v\nicapd: %s: invalid policy (%d %s)\n", err, *file, n, plural(n, "error", "errors"))
		return exitError
	}
	defer p.Close()
	for _, w := range p.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	rules := p.Rules()
	fmt.Fprintf(stdout, "%s: OK, %d %s (%s), version %s\n", *file, len(rules), plural(len(rules), "rule", "rules"), strings.Join(rules, ", "), p.Version)
	return exitOK
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// loadPolicy loads the policy the tools use: file, else ./policy.toml if
// it exists, else the built-in copy of the repository's policy.toml, the
// same choice as the daemon's. It returns the policy and where it came
// from.
func loadPolicy(file string) (*policy.Policy, string, error) {
	if file == "" {
		if _, err := os.Stat(icapd.DefaultPolicyFile); err == nil {
			file = icapd.DefaultPolicyFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("policy: %w", err)
		}
	}
	if file == "" {
		const name = "built-in policy.toml"
		p, err := policy.Parse(name, edgeadapt.DefaultPolicy)
		return p, name, err
	}
	p, err := policy.LoadFile(file)
	return p, file, err
}
