package congestion_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// A sender asks for permission, sends, notifies, and reports feedback;
// an adaptive application then asks what rate it can count on.
func Example() {
	m := congestion.NewManager(congestion.Config{})
	f, err := m.Open(congestion.FlowInfo{
		Dst:      netip.MustParseAddrPort("192.0.2.1:80"),
		Protocol: "tcp",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()

	g, err := f.Acquire(context.Background(), 4096)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("granted", g.N, "bytes in macroflow", f.Macroflow().Key())
	// ... write g.N bytes ...
	f.Notify(g.N)
	// ... the receiver acknowledged them after 50 ms ...
	f.Update(g.N, 0, congestion.NoCongestion, 50*time.Millisecond)

	rate, srtt, _, ok := f.Query()
	fmt.Printf("rate %.0f B/s, srtt %v, ok %v\n", rate, srtt, ok)
	// Output:
	// granted 4096 bytes in macroflow 192.0.2.1/32
	// rate 371520 B/s, srtt 50ms, ok true
}
