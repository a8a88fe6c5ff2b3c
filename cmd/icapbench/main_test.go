package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		addr        string
		allowRemote bool
		wantErr     string
	}{
		{addr: "127.0.0.1:1344"},
		{addr: "[::1]:1344"},
		{addr: "localhost:1344"},
		{addr: "192.0.2.1:1344", wantErr: "not a loopback address"},
		{addr: "192.0.2.1:1344", allowRemote: true},
		{addr: "nonsense", wantErr: "missing port"},
	}
	for _, tt := range tests {
		err := checkTarget(tt.addr, tt.allowRemote)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("checkTarget(%q, %v) = %v, want error containing %q", tt.addr, tt.allowRemote, err, tt.wantErr)
		}
	}
}

// TestRun drives a real icap.Server through each mode, with the raw
// client and with the icap.Client, and checks the counts: -n is exact,
// statuses are what the server answered, the whole body came back.
func TestRun(t *testing.T) {
	noMod := icaptest.NewServer(icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
		icap.NoModification(w, r)
	}))
	defer noMod.Close()
	echo := icaptest.NewServer(icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) { icap.Echo(w, r) }))
	defer echo.Close()
	bodyFile := filepath.Join(t.TempDir(), "body")
	os.WriteFile(bodyFile, bytes.Repeat([]byte("b"), 3000), 0o644)
	tests := []struct {
		name       string
		o          options
		echo       bool // against the Echo server (reads past previews)
		wantStatus string
		wantIn     int64 // body bytes received per request
	}{
		{name: "full echo", o: options{method: "RESPMOD", size: 10240, preview: -1}, wantStatus: "200", wantIn: 10240},
		{name: "preview 204", o: options{method: "RESPMOD", size: 10240, preview: 1024, allow204: true}, wantStatus: "204"},
		{name: "preview 100 continue", o: options{method: "RESPMOD", size: 10240, preview: 1024}, echo: true, wantStatus: "200", wantIn: 10240},
		{name: "preview ieof", o: options{method: "RESPMOD", size: 100, preview: 1024}, echo: true, wantStatus: "200", wantIn: 100},
		{name: "1 MB echo", o: options{method: "RESPMOD", size: 1 << 20, preview: -1}, echo: true, wantStatus: "200", wantIn: 1 << 20},
		{name: "reqmod allow 204", o: options{method: "REQMOD", size: 100, preview: -1, allow204: true}, wantStatus: "204"},
		{name: "reqmod echo", o: options{method: "REQMOD", size: 100, preview: -1}, echo: true, wantStatus: "200", wantIn: 100},
		{name: "options", o: options{method: "OPTIONS", preview: -1}, wantStatus: "200"},
		{name: "body file", o: options{method: "RESPMOD", bodyFile: bodyFile, preview: -1}, wantStatus: "200", wantIn: 3000},
	}
	runs := 0
	for _, client := range []bool{false, true} {
		for _, tt := range tests {
			name := "raw/" + tt.name
			if client {
				name = "client/" + tt.name
			}
			t.Run(name, func(t *testing.T) {
				srv := noMod
				if tt.echo {
					srv = echo
				}
				u, err := url.Parse(srv.ServiceURL("/echo"))
				if err != nil {
					t.Fatal(err)
				}
				o := tt.o
				o.addr, o.service, o.c, o.n, o.timeout, o.client = u.Host, "/echo", 4, 200, 10*time.Second, client
				if err := o.validate(); err != nil {
					t.Fatal(err)
				}
				body, _ := o.body()
				rep, err := run(context.Background(), o, body)
				if err != nil {
					t.Fatal(err)
				}
				if rep.Requests != 200 || rep.Errors != 0 || rep.Status[tt.wantStatus] != 200 {
					t.Fatalf("report %+v: want 200 requests, all %s, no errors", rep, tt.wantStatus)
				}
				if tt.o.bodyFile != "" && rep.BodySize != 3000 {
					t.Errorf("body size %d, want the 3000 bytes of -body", rep.BodySize)
				}
				if in := int64(rep.MBInPerSec*1e6*rep.Seconds + 0.5); in != 200*tt.wantIn {
					t.Errorf("received %d body bytes, want %d", in, 200*tt.wantIn)
				}
				if rep.P50Ms <= 0 || rep.P99Ms < rep.P50Ms {
					t.Errorf("latencies p50 %v p99 %v", rep.P50Ms, rep.P99Ms)
				}
			})
			runs++
		}
	}
	// -c 4 workers, each on one persistent connection. Raw workers all
	// connect before the clock starts; an icap.Client worker that starts
	// after the others have used up the 200 requests never dials. So a run
	// opens between 1 and 4 connections, never one per request.
	if n := noMod.Accepted() + echo.Accepted(); n > 4*runs || n < runs {
		t.Errorf("servers accepted %d connections for %d runs of 4 workers, want %d to %d", n, runs, runs, 4*runs)
	}
}

// TestHoldIdle opens idle connections and holds them until canceled.
func TestHoldIdle(t *testing.T) {
	srv := icaptest.NewServer(icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) { icap.Echo(w, r) }))
	defer srv.Close()
	u, _ := url.Parse(srv.ServiceURL("/echo"))
	o := options{addr: u.Host, service: "/echo", idle: 50, d: time.Hour, timeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- holdIdle(ctx, o, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "open 50 idle connections") {
		t.Fatalf("first line %q, %v", line, err)
	}
	if n := srv.Accepted(); n != 50 {
		t.Errorf("server accepted %d connections, want 50", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
