package icapd

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/transcode"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, c Config) {
			if c.listen() != DefaultListen || c.admin() != DefaultAdmin || c.AllowSet || c.shutdownTimeout() != DefaultShutdownTimeout {
				t.Errorf("defaults: %+v", c)
			}
			if c.TranscodeTimeout != transcode.DefaultTimeout {
				t.Errorf("default TranscodeTimeout %v, want transcode.DefaultTimeout", c.TranscodeTimeout)
			}
			if len(c.allow()) != 2 {
				t.Errorf("default allow-list = %v, want loopback v4 and v6", c.allow())
			}
		}},
		{name: "all", args: []string{"-listen", "0.0.0.0:11344", "-listen-tls", "127.0.0.1:11345", "-cert", "c.pem", "-key", "k.pem",
			"-admin", "off", "-allow", "10.0.0.0/8,127.0.0.1", "-shutdown-timeout", "3s", "-access-log", "off", "-log-level", "debug"},
			check: func(t *testing.T, c Config) {
				if c.Listen != "0.0.0.0:11344" || c.ListenTLS != "127.0.0.1:11345" || c.CertFile != "c.pem" || c.KeyFile != "k.pem" ||
					c.Admin != "off" || !c.AllowSet || len(c.Allow) != 2 || c.ShutdownTimeout != 3*time.Second || c.AccessLog != "off" {
					t.Errorf("parsed %+v", c)
				}
			}},
		{name: "proxy defaults", args: nil, check: func(t *testing.T, c Config) {
			if c.proxy() != DefaultProxy || c.ProxySet || c.ProxyNoCM || c.StoreSnapshot != "" || c.Spand != "" {
				t.Errorf("proxy defaults: %+v", c)
			}
		}},
		{name: "proxy flags", args: []string{"-proxy", "", "-proxy-cm=false", "-store-snapshot", "s.json"}, check: func(t *testing.T, c Config) {
			if c.proxy() != "off" || !c.ProxySet || !c.ProxyNoCM || c.StoreSnapshot != "s.json" {
				t.Errorf("parsed %+v", c)
			}
		}},
		{name: "transcode timeout", args: []string{"-transcode-timeout", "250ms"}, check: func(t *testing.T, c Config) {
			if c.TranscodeTimeout != 250*time.Millisecond {
				t.Errorf("TranscodeTimeout %v, want 250ms", c.TranscodeTimeout)
			}
		}},
		{name: "spand", args: []string{"-spand", "http://127.0.0.1:7070"}, check: func(t *testing.T, c Config) {
			if c.Spand != "http://127.0.0.1:7070" {
				t.Errorf("parsed %+v", c)
			}
		}},
		// fails
		{name: "spand not a URL", args: []string{"-spand", "127.0.0.1:7070"}, wantErr: "want an http:// or https:// URL"},
		{name: "snapshot with spand", args: []string{"-spand", "http://127.0.0.1:7070", "-store-snapshot", "s.json"}, wantErr: "not with -spand"},
		{name: "tls without cert", args: []string{"-listen-tls", ":11345"}, wantErr: "needs -cert and -key"},
		{name: "cert without tls", args: []string{"-cert", "c.pem"}, wantErr: "without -listen-tls"},
		{name: "no listener", args: []string{"-listen", "off"}, wantErr: "no listener"},
		{name: "bad allow", args: []string{"-allow", "10.0.0.0/99"}, wantErr: "-allow"},
		{name: "empty allow", args: []string{"-allow", ""}, wantErr: "empty"},
		{name: "negative transcode timeout", args: []string{"-transcode-timeout", "-1s"}, wantErr: "-transcode-timeout -1s is negative"},
		{name: "bad level", args: []string{"-log-level", "loud"}, wantErr: "-log-level"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
