package track_test

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/edgeadapt/edgeadapt/spand/track"
	"github.com/edgeadapt/edgeadapt/spand/track/tracktest"
)

// A Tracker fed with decoded frames hands one record per connection to
// OnConn; Flush ends what is still open. Captured next to the client, the
// request's data-to-ACK samples (30 ms SYN, 40 ms request) time the path
// to the server, the client's immediate ACKs add ~0 ms: RTT min 30 ms,
// median 35 ms.
func ExampleTracker() {
	dec, err := track.NewDecoder(layers.LinkTypeEthernet)
	if err != nil {
		panic(err)
	}
	w, _ := track.NewWriter(os.Stdout, track.FormatCSV)
	tr := track.New(track.Config{OnConn: func(c *track.Conn) {
		fmt.Println(c.A, "->", c.B, c.Class, c.BA.UniqueBytes, "bytes in", c.Elapsed(), "handshake", c.HandshakeRTT)
		w.Write(c)
	}})
	cli, srv := netip.MustParseAddrPort("192.168.1.2:40000"), netip.MustParseAddrPort("198.51.100.7:443")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	send := func(s tracktest.Segment, dt time.Duration) {
		s.Window = 1000
		tr.Frame(dec, tracktest.Frame(layers.LinkTypeEthernet, s), now.UnixNano())
		now = now.Add(dt)
	}
	send(tracktest.Segment{Src: cli, Dst: srv, SYN: true, Seq: 0}, 30*time.Millisecond)
	send(tracktest.Segment{Src: srv, Dst: cli, SYN: true, ACK: true, Seq: 0, Ack: 1}, 0)
	send(tracktest.Segment{Src: cli, Dst: srv, ACK: true, Seq: 1, Ack: 1, Payload: make([]byte, 200)}, 40*time.Millisecond)
	send(tracktest.Segment{Src: srv, Dst: cli, ACK: true, Seq: 1, Ack: 201, Payload: make([]byte, 1400)}, 10*time.Millisecond)
	send(tracktest.Segment{Src: srv, Dst: cli, ACK: true, FIN: true, Seq: 1401, Ack: 201}, 0)
	send(tracktest.Segment{Src: cli, Dst: srv, ACK: true, FIN: true, Seq: 201, Ack: 1402}, 0)
	tr.Flush()
	w.Flush()
	// Output:
	// 192.168.1.2:40000 -> 198.51.100.7:443 web 1400 bytes in 80ms handshake 30ms
	// a,b,class,first,last,elapsed_s,pkts_a2b,pkts_b2a,data_bytes_a2b,data_bytes_b2a,unique_bytes_a2b,unique_bytes_b2a,rexmt_pkts_a2b,rexmt_pkts_b2a,throughput_a2b,throughput_b2a,rtt_handshake_ms,rtt_min_ms,rtt_median_ms,rtt_ts_median_ms,complete
	// 192.168.1.2:40000,198.51.100.7:443,web,2026-01-01T12:00:00Z,2026-01-01T12:00:00.08Z,0.08,3,3,200,1400,200,1400,0,0,2500.000,17500.000,30,30,35,0,true
}
