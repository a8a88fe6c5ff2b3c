package systest

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"text/tabwriter"
)

// figures collects what the tests measured, printed as one table at the
// end of a verbose run (go test -v), for the README.
var figures struct {
	sync.Mutex
	rows [][3]string // test, figure, value
}

// figure records one measured value and logs it with the test.
func figure(t testing.TB, name, format string, args ...any) {
	t.Helper()
	v := fmt.Sprintf(format, args...)
	t.Logf("figure: %s = %s", name, v)
	figures.Lock()
	figures.rows = append(figures.rows, [3]string{t.Name(), name, v})
	figures.Unlock()
}

func printFigures() {
	if !testing.Verbose() || len(figures.rows) == 0 {
		return
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nsystem test figures\ntest\tfigure\tvalue")
	for _, r := range figures.rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r[0], r[1], r[2])
	}
	w.Flush()
}
