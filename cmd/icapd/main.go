// Command icapd is the edgeadapt ICAP server (RFC 3507): the services
// /echo, /reqmod and /respmod on 127.0.0.1:1344 and an admin HTTP server
// with /metrics and /healthz on 127.0.0.1:9090, by default. Run
// "icapd -h" for the flags; the wiring lives in internal/icapd.
package main

import (
	"context"
	"os"

	"github.com/edgeadapt/edgeadapt/internal/icapd"
)

func main() {
	if code, ok := dispatch(os.Args[1:], os.Stdout, os.Stderr); ok {
		os.Exit(code) // a tool: -check-policy, explain, transcode
	}
	os.Exit(icapd.Main(context.Background(), os.Args[1:], os.Stderr))
}
