package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
	"github.com/edgeadapt/edgeadapt/spand/track/tracktest"
)

// Reading a capture with a filter in tcpdump syntax (the built-in compiler
// here; CompileFilter uses tcpdump when it is installed).
func ExampleRun() {
	// A capture file in memory: one TCP segment to port 80, one to 22.
	var file bytes.Buffer
	w := pcapgo.NewWriter(&file)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for _, port := range []uint16{80, 22} {
		frame := tracktest.Frame(layers.LinkTypeEthernet, tracktest.Segment{
			Src: netip.MustParseAddrPort("10.0.0.1:5000"), Dst: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port),
			ACK: true, Window: 100, Payload: []byte("hello")})
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(frame), Length: len(frame)}, frame)
	}

	src, err := capture.NewFileReader(&file)
	if err != nil {
		panic(err)
	}
	filter, err := capture.CompileBuiltin("tcp and not port 22", src.LinkType())
	if err != nil {
		panic(err)
	}
	t := track.New(track.Config{OnConn: func(c *track.Conn) { fmt.Println(c.A, "->", c.B, c.AB.DataBytes, "bytes") }})
	st, err := capture.Run(context.Background(), src, filter, t)
	if err != nil {
		panic(err)
	}
	t.Flush()
	fmt.Println(st.Read, "read,", st.Filtered, "filtered out")
	// Output:
	// 10.0.0.1:5000 -> 10.0.0.2:80 5 bytes
	// 2 read, 1 filtered out
}
