package squidtest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
)

// TestSquidProxiesOrigin starts a Squid without ICAP and fetches origin
// bodies through it: the harness works on its own.
func TestSquidProxiesOrigin(t *testing.T) {
	origin := NewOrigin(t)
	sq := Start(t, Config{})
	for _, n := range []int64{0, 10 << 10, 1 << 20} {
		resp, err := sq.Client().Get(origin.URL(n))
		if err != nil {
			t.Fatalf("GET %d bytes through squid: %v", n, err)
		}
		h := sha256.New()
		got, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || got != n || resp.StatusCode != 200 {
			t.Fatalf("%d bytes: status %d, got %d bytes, err %v", n, resp.StatusCode, got, err)
		}
		if d := hex.EncodeToString(h.Sum(nil)); d != Digest(n) {
			t.Errorf("%d bytes: digest %s, want %s", n, d, Digest(n))
		}
		if via := resp.Header.Get("Via"); !strings.Contains(via, "squid") {
			t.Errorf("%d bytes: Via %q does not name squid: the response did not come through it", n, via)
		}
	}
	if got := origin.Requests(); got != 3 {
		t.Errorf("origin served %d requests, want 3 (cache deny all)", got)
	}
}

func TestParseICAPLog(t *testing.T) {
	tests := []struct {
		name, in string
		want     []ICAPLogEntry
		wantErr  bool
	}{
		{
			name: "echo and mod",
			in: "1763766000.123 resp RESPMOD ICAP_ECHO 204 3 1200 120 icap://127.0.0.1:1344/respmod 127.0.0.1\n" +
				"1763766000.456 req REQMOD ICAP_MOD 200 - 300 - icap://127.0.0.1:1344/reqmod -\n",
			want: []ICAPLogEntry{
				{Time: "1763766000.123", Service: "resp", Method: "RESPMOD", Outcome: "ICAP_ECHO", Status: 204, Millis: 3, Sent: 1200, Received: 120, URL: "icap://127.0.0.1:1344/respmod", ClientIP: "127.0.0.1"},
				{Time: "1763766000.456", Service: "req", Method: "REQMOD", Outcome: "ICAP_MOD", Status: 200, Millis: -1, Sent: 300, Received: -1, URL: "icap://127.0.0.1:1344/reqmod", ClientIP: "-"},
			},
		},
		{name: "empty", in: "\n"},
		{name: "short line", in: "1 2 3\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseICAPLog(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d entries, want %d", len(got), len(tt.want))
			}
			for i := range got {
				got[i].Line = ""
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
