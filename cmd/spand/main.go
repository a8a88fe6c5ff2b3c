// Command spand is the SPAND passive network measurement collector and
// performance server.
//
//	spand -r FILE [-f FILTER] [-o table|json|csv]   offline: one record per TCP connection
//	spand -i IFACE [-f FILTER] [-o ...]             live capture, records as connections end
//	spand -i IFACE [-f FILTER] -serve ADDR          live capture plus the performance server
//	spand -i IFACE -report-to URL                   capture node: reports go to a central spand
//	spand eval -r FILE                              SPAND evaluation of a capture
//	spand query ADDR                                ask a running server
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/edgeadapt/edgeadapt/spand/track"
)

// commands are the subcommands (first argument), registered by the files
// that implement them (eval.go, query.go) from init functions.
var commands = map[string]func(ctx context.Context, args []string) error{}

// serveHook runs the performance server on addr (serve.go sets it from an
// init function). capture is nil when no interface was given; otherwise
// it runs the live capture, handing every connection record (final and
// periodic, valid only during the call) to onConn, until ctx is done.
var serveHook func(ctx context.Context, addr string, capture CaptureFunc) error

// CaptureFunc runs a capture and hands each connection record to onConn.
type CaptureFunc func(ctx context.Context, onConn func(*track.Conn)) error

var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "spand:", err)
		}
		os.Exit(2)
	}
}

// run is main without the process: arguments, output and errors are
// parameters so that tests can call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(ctx, args[1:])
		}
	}
	fs := flag.NewFlagSet("spand", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.register(fs)
	for _, reg := range flagHooks {
		reg(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage:\n  spand -r FILE [-f FILTER] [-o table|json|csv]\n  spand -i IFACE [-f FILTER] [-serve ADDR] [-report-to URL]\n  spand eval -r FILE\n  spand query ADDR\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.read != "" && o.iface != "" {
		return fmt.Errorf("-r and -i exclude each other")
	}
	if forwardOpts.url != "" {
		if o.read == "" && o.iface == "" {
			return fmt.Errorf("-report-to needs a capture to report on (-r or -i)")
		}
		local, lerr := serveOpts.agg.localFunc()
		if lerr != nil {
			return lerr
		}
		if o.fw, lerr = forwardOpts.newForwarder(local, log); lerr != nil {
			return lerr
		}
		// The forwarder outlives ctx: at the end it keeps trying for
		// -report-wait to deliver what is queued.
		fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		go func() { done <- o.fw.run(fctx) }()
		defer func() {
			stop()
			if ferr := <-done; ferr != nil && err == nil {
				err = ferr
			}
		}()
	}
	switch {
	case o.read != "":
		return offline(ctx, &o, stdout, log)
	case o.serve != "":
		if serveHook == nil {
			return fmt.Errorf("-serve: this build has no performance server")
		}
		var capture CaptureFunc
		if o.iface != "" {
			capture = func(ctx context.Context, onConn func(*track.Conn)) error {
				return live(ctx, &o, onConn, log)
			}
		}
		return serveHook(ctx, o.serve, capture)
	case o.iface != "":
		return liveOutput(ctx, &o, stdout, log)
	}
	fs.Usage()
	return errUsage
}

// flagHooks let other files of the command (serve.go) add their flags to
// the main flag set; append from an init function.
var flagHooks []func(fs *flag.FlagSet)
