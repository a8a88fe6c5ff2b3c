package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
)

// headerFlag collects repeated -header "Name: value" flags.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

// explainMain is `icapd explain`: it builds the message the flags
// describe, runs it through the policy and prints every rule tried, why
// each did not match, the one that did and the decision, so an operator
// can ask "why did this happen?". It exits 0 after printing, 1 when the
// policy does not load, 2 for bad flags.
func explainMain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("icapd explain", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var q policy.Query
	hdr := headerFlag{}
	fset.StringVar(&q.URL, "url", "", "URL of the HTTP request (required)")
	fset.StringVar(&q.ClientIP, "client-ip", "", "client address, as Squid sends it in X-Client-IP")
	fset.StringVar(&q.Bandwidth, "bandwidth", "", "the client's measured rate, e.g. 56kbit or 2Mbit (instead of asking spand)")
	file := fset.String("policy", "", "policy file (default ./policy.toml, else the built-in copy)")
	spandURL := fset.String("spand", "", "spand API URL to ask for the client's measured rate when -bandwidth is not given")
	service := fset.String("service", "", "reqmod or respmod (default respmod when -content-type or -status is given, else reqmod)")
	fset.StringVar(&q.Method, "method", "GET", "HTTP method")
	fset.StringVar(&q.User, "user", "", "authenticated user (decoded X-Authenticated-User)")
	fset.IntVar(&q.Status, "status", 0, "response status (respmod; default 200)")
	fset.StringVar(&q.ContentType, "content-type", "", "content type of the response (respmod) or request body")
	fset.Int64Var(&q.Length, "length", 0, "content length in bytes (default unknown)")
	fset.Var(hdr, "header", `request header "Name: value", repeatable (e.g. "Save-Data: on", "Downlink: 0.4")`)
	fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: icapd explain -url URL [-client-ip IP] [-bandwidth 56kbit] [-policy FILE] [flags]\n\nPrints which rule of the policy matches the message and why the others do not.\n\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return exitUsage
	}
	if q.URL == "" || fset.NArg() > 0 {
		fset.Usage()
		return exitUsage
	}
	switch s := *service; {
	case s == "" && (q.ContentType != "" || q.Status != 0):
		q.Service = policy.Respmod
	case s != "":
		svc, ok := policy.ParseService(s)
		if !ok || svc == policy.ServiceAny {
			fmt.Fprintf(stderr, "icapd explain: -service %q: want reqmod or respmod\n", s)
			return exitUsage
		}
		q.Service = svc
	}
	q.Header = http.Header(hdr)
	p, name, err := loadPolicy(*file)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitError
	}
	defer p.Close()
	var pred policy.Predictor
	if *spandURL != "" {
		pred = &adapt.Spand{Source: &spand.Client{BaseURL: *spandURL}}
	}
	ex, err := p.ExplainQuery(context.Background(), q, pred)
	if err != nil {
		fmt.Fprintf(stderr, "icapd %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "policy %s (version %s)\n", name, p.Version)
	if _, err := ex.WriteTo(stdout); err != nil {
		return exitError
	}
	return exitOK
}
