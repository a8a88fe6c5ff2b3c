// Package promtext writes metrics in the Prometheus text exposition
// format (version 0.0.4). icapd and spand write their few counters by
// hand rather than pull in client_golang's dependency tree; this keeps
// the one place that knows the HELP and TYPE lines, so that a family's
// name cannot differ between its lines.
package promtext

import (
	"fmt"
	"io"
)

// Header writes the HELP and TYPE lines of the metric family name of
// type typ ("counter", "gauge", "histogram"); its samples follow.
func Header(w io.Writer, name, typ, help string) error {
	_, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	return err
}

// Value writes a family of one sample without labels: its HELP and TYPE
// lines and "name v" (v formatted with %v).
func Value(w io.Writer, name, typ, help string, v any) error {
	if err := Header(w, name, typ, help); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s %v\n", name, v)
	return err
}
