package icapd

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      string
		want    string // prefixes joined by space
		wantErr string
	}{
		{in: "127.0.0.0/8", want: "127.0.0.0/8"},
		{in: "10.1.2.3/8, ::1", want: "10.0.0.0/8 ::1/128"},
		{in: "192.168.1.7", want: "192.168.1.7/32"},
		{in: "fd00::/8,", want: "fd00::/8"},
		// fails
		{in: "", wantErr: "empty"},
		{in: "10.0.0.0/33", wantErr: `"10.0.0.0/33"`},
		{in: "example.com", wantErr: "not a CIDR"},
	}
	for _, tt := range tests {
		got, err := ParseAllow(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseAllow(%q) err = %v, want it to mention %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAllow(%q): %v", tt.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, " ") != tt.want {
			t.Errorf("ParseAllow(%q) = %v, want %s", tt.in, s, tt.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.9.9.9", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true}, // IPv4-mapped, as a dual-stack listener reports it
		{"10.0.0.1", false},
		{"::2", false},
	}
	for _, tt := range tests {
		if got := allowed(DefaultAllow, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("allowed(default, %s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestAllowListenerRefuses connects from 127.0.0.1 to a listener that
// allows only 10.0.0.0/8: the connection is closed unanswered, logged and
// counted; a later allowed connection still gets through.
func TestAllowListenerRefuses(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logBuf testenv.SyncBuffer
	refused := make(chan struct{}, 1)
	l := &allowListener{
		Listener: inner,
		allow:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		log:      slog.New(slog.NewTextHandler(&logBuf, nil)),
		refused:  func() { refused <- struct{}{} },
		logEvery: time.Hour, // the burst below always falls within it
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("connection from 127.0.0.1 was not refused")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on refused connection = %d, %v; want EOF (closed by server)", n, err)
	}
	if !strings.Contains(logBuf.String(), "refused ICAP client") || !strings.Contains(logBuf.String(), "127.0.0.1") {
		t.Errorf("log does not name the refused client: %q", logBuf.String())
	}
	// A burst of refusals within the log interval: counted, logged once.
	for range 5 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		<-refused
		c.Close()
	}
	if n := strings.Count(logBuf.String(), "refused ICAP client"); n != 1 {
		t.Errorf("%d refusal log lines for a burst of 6 refusals within the interval, want 1", n)
	}
	if l.suppressed != 5 {
		t.Errorf("suppressed = %d, want 5", l.suppressed)
	}
	l.Close()

	// The same listener with the default allow-list accepts loopback.
	inner2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l2 := &allowListener{Listener: inner2, allow: DefaultAllow, log: l.log}
	defer l2.Close()
	go func() {
		c, err := l2.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c2, err := net.Dial("tcp", inner2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	select {
	case a := <-accepted:
		a.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("allowed connection not accepted")
	}
}

func TestIsLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1344": true,
		"[::1]:1344":     true,
		"localhost:1344": true,
		":1344":          false,
		"0.0.0.0:1344":   false,
		"10.0.0.5:1344":  false,
		"garbage":        false,
	} {
		if got := isLoopbackListen(addr); got != want {
			t.Errorf("isLoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}
