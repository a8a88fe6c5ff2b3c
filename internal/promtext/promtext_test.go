package promtext

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(*strings.Builder) error
		want  string
	}{
		{"counter", func(b *strings.Builder) error {
			return Value(b, "x_total", "counter", "Things counted.", int64(42))
		}, "# HELP x_total Things counted.\n# TYPE x_total counter\nx_total 42\n"},
		{"gauge string", func(b *strings.Builder) error {
			return Value(b, "up_seconds", "gauge", "Seconds up.", "1.5")
		}, "# HELP up_seconds Seconds up.\n# TYPE up_seconds gauge\nup_seconds 1.5\n"},
		{"header", func(b *strings.Builder) error {
			return Header(b, "req_total", "counter", `Requests by "service".`)
		}, "# HELP req_total Requests by \"service\".\n# TYPE req_total counter\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := tt.write(&b); err != nil || b.String() != tt.want {
				t.Errorf("wrote %q (%v), want %q", b.String(), err, tt.want)
			}
		})
	}
}
