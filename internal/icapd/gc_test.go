package icapd

import (
	"runtime/debug"
	"testing"
)

func TestGCSettings(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	const none = 1<<63 - 1
	tests := []struct {
		name        string
		args        []string
		getenv      func(string) string
		percent     int
		setPercent  bool
		limit       int64
		setLimit    bool
		wantPercent string
	}{
		{"defaults", nil, env(), DefaultGCPercent, true, DefaultMemoryLimit, true, "400"},
		{"environment wins over defaults", nil, env("GOGC", "150", "GOMEMLIMIT", "2GiB"), 0, false, 0, false, ""},
		{"flags win over environment", []string{"-gc-percent", "200", "-memory-limit", "1000000"}, env("GOGC", "150", "GOMEMLIMIT", "2GiB"), 200, true, 1000000, true, "200"},
		{"off and no limit", []string{"-gc-percent", "-1", "-memory-limit", "-5"}, env(), -1, true, none, true, "off"},
		{"zero flags mean defaults", []string{"-gc-percent", "0", "-memory-limit", "0"}, env(), DefaultGCPercent, true, DefaultMemoryLimit, true, "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseFlags(append([]string{"-listen", "127.0.0.1:0"}, tt.args...), t.Output())
			if err != nil {
				t.Fatal(err)
			}
			p, sp, l, sl := c.gcSettings(tt.getenv)
			if p != tt.percent || sp != tt.setPercent || l != tt.limit || sl != tt.setLimit {
				t.Errorf("gcSettings = %d %v %d %v, want %d %v %d %v", p, sp, l, sl, tt.percent, tt.setPercent, tt.limit, tt.setLimit)
			}
			if !tt.setPercent {
				return
			}
			// applyGC changes this process's collector: restore it.
			oldP, oldL := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
			defer func() { debug.SetGCPercent(oldP); debug.SetMemoryLimit(oldL) }()
			gogc, _ := c.applyGC(tt.getenv)
			if gogc != tt.wantPercent {
				t.Errorf("applyGC GOGC = %s, want %s", gogc, tt.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.limit {
				t.Errorf("memory limit in force = %d, want %d", got, tt.limit)
			}
		})
	}
}
