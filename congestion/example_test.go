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

// An adaptive application subscribes to its flow's rate: it is told at
// the first RTT sample and whenever the rate moves by more than 20%.
func ExampleFlow_Subscribe() {
	m := congestion.NewManager(congestion.Config{})
	f, _ := m.Open(congestion.FlowInfo{Dst: netip.MustParseAddrPort("192.0.2.1:80")})
	defer f.Close()
	f.Subscribe(congestion.Thresholds{RateDown: 0.2, RateUp: 0.2}, func(s congestion.Status) {
		fmt.Printf("rate %.0f kB/s at srtt %v\n", s.Rate/1000, s.SRTT)
	})

	g, _ := f.Acquire(context.Background(), 10*m.MSS())
	f.Notify(g.N)
	f.Update(m.MSS(), 0, congestion.NoCongestion, 100*time.Millisecond) // first sample
	f.Update(m.MSS(), 0, congestion.NoCongestion, 100*time.Millisecond) // +9%: quiet
	f.Update(0, m.MSS(), congestion.LossFeedback, 0)                    // halved: told
	// Output:
	// rate 159 kB/s at srtt 100ms
	// rate 87 kB/s at srtt 100ms
}

// Flows carry weights: the scheduler shares the macroflow's window 2:1,
// and Query reports each flow's share of the rate.
func ExampleFlow_Query() {
	m := congestion.NewManager(congestion.Config{})
	dst := netip.MustParseAddrPort("192.0.2.1:80")
	video, _ := m.Open(congestion.FlowInfo{Dst: dst, Weight: 2})
	text, _ := m.Open(congestion.FlowInfo{Dst: dst, Weight: 1})
	defer video.Close()
	defer text.Close()
	for _, f := range []*congestion.Flow{video, text} {
		g, _ := f.Acquire(context.Background(), 2*m.MSS())
		f.Notify(g.N)
		f.Update(m.MSS(), 0, congestion.NoCongestion, 50*time.Millisecond)
	}
	rv, _, _, _ := video.Query()
	rt, _, _, _ := text.Query()
	fmt.Printf("same macroflow: %v, shares %.2f and %.2f\n", video.Macroflow() == text.Macroflow(), rv/(rv+rt), rt/(rv+rt))
	// Output:
	// same macroflow: true, shares 0.67 and 0.33
}
