// Command icapd is the edgeadapt ICAP server (RFC 3507) and HTTP forward
// proxy. With no flags it serves ICAP (/echo, /reqmod, /respmod) on
// 127.0.0.1:1344, the proxy on 127.0.0.1:3128 (the same policy in
// process, client writes under the congestion manager), the admin HTTP
// server (/metrics, /healthz) on 127.0.0.1:9090, with an in-process
// measurement store and ./policy.toml. Run "icapd -h" for the flags; the
// wiring lives in internal/icapd.
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
