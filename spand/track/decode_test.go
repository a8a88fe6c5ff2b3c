package track_test

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/capture"
	"github.com/edgeadapt/edgeadapt/spand/track"
	"github.com/edgeadapt/edgeadapt/spand/track/tracktest"
)

// TestDecodeLinkTypes decodes a TCP/IPv4, a TCP/IPv6 with timestamps and a
// UDP frame of every supported link type (and 802.1Q on Ethernet).
func TestDecodeLinkTypes(t *testing.T) {
	segs := []tracktest.Segment{
		{Src: netip.MustParseAddrPort("10.0.0.1:1234"), Dst: netip.MustParseAddrPort("10.0.0.2:80"),
			ACK: true, PSH: true, Seq: 100, Ack: 200, Window: 512, Payload: []byte("hello")},
		{Src: netip.MustParseAddrPort("[2001:db8::1]:443"), Dst: netip.MustParseAddrPort("[2001:db8::2]:5555"),
			SYN: true, ACK: true, Seq: 7, Ack: 9, Window: 65535, TSval: 1000, TSecr: 999},
		{Src: netip.MustParseAddrPort("10.0.0.1:5004"), Dst: netip.MustParseAddrPort("10.0.0.2:5004"), UDP: true, Payload: make([]byte, 160)},
		{Src: netip.MustParseAddrPort("10.0.0.1:1234"), Dst: netip.MustParseAddrPort("10.0.0.2:80"), ACK: true, VLAN: 42, Payload: []byte("x")},
	}
	for _, lt := range tracktest.LinkTypes {
		dec, err := track.NewDecoder(lt)
		if err != nil {
			t.Fatalf("%s: %v", lt, err)
		}
		for i, s := range segs {
			if s.VLAN != 0 && lt != layers.LinkTypeEthernet {
				continue
			}
			var p track.Packet
			if err := dec.Decode(tracktest.Frame(lt, s), &p); err != nil {
				t.Fatalf("%s seg %d: %v", lt, i, err)
			}
			wantProto := track.TCP
			if s.UDP {
				wantProto = track.UDP
			}
			if netip.AddrPortFrom(p.Src, p.SrcPort) != s.Src || netip.AddrPortFrom(p.Dst, p.DstPort) != s.Dst ||
				p.Proto != wantProto || p.PayloadLen != len(s.Payload) {
				t.Errorf("%s seg %d: got %+v", lt, i, p)
			}
			if !s.UDP && (p.Seq != s.Seq || p.Ack != s.Ack || p.Window != s.Window ||
				(p.Flags&track.FlagSYN != 0) != s.SYN || (p.Flags&track.FlagACK != 0) != s.ACK) {
				t.Errorf("%s seg %d: TCP fields %+v", lt, i, p)
			}
			if s.TSval != 0 && (!p.HasTS || p.TSval != s.TSval || p.TSecr != s.TSecr) {
				t.Errorf("%s seg %d: timestamps %+v", lt, i, p)
			}
		}
	}
}

// TestDecodeTruncatedAndTSO: payload lengths come from the IP header, so a
// headers-only frame counts what was sent, and an IPv4 length of 0 (TSO
// capture on the sender) counts what was captured.
func TestDecodeTruncatedAndTSO(t *testing.T) {
	dec, _ := track.NewDecoder(layers.LinkTypeEthernet)
	s := tracktest.Segment{Src: netip.MustParseAddrPort("10.0.0.1:1"), Dst: netip.MustParseAddrPort("10.0.0.2:2"), ACK: true, Payload: make([]byte, 60000)}
	full := tracktest.Frame(layers.LinkTypeEthernet, s)
	var p track.Packet
	if err := dec.Decode(full[:96], &p); err != nil || p.PayloadLen != 60000 || !p.Truncated {
		t.Errorf("headers-only frame: err %v, payload %d truncated %v", err, p.PayloadLen, p.Truncated)
	}
	tso := append([]byte(nil), full...)
	tso[14+2], tso[14+3] = 0, 0 // IPv4 total length 0
	if err := dec.Decode(tso, &p); err != nil || p.PayloadLen != 60000 {
		t.Errorf("TSO frame: err %v, payload %d", err, p.PayloadLen)
	}
	for _, n := range []int{0, 1, 13, 14, 20, 33, 34, 40, 53} {
		if err := dec.Decode(full[:n], &p); err == nil {
			t.Errorf("frame cut at %d bytes decoded", n)
		}
	}
	if _, err := track.NewDecoder(layers.LinkTypeFDDI); !errors.Is(err, track.ErrLinkType) {
		t.Errorf("FDDI: %v", err)
	}
}

// seedFrames reads testdata/seeds.pcap.
func seedFrames(t testing.TB) [][]byte {
	f, err := os.Open("testdata/seeds.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
}

// FuzzDecode feeds arbitrary bytes, as any supported link type, through
// the decoder and the tracker: nothing may panic, and decoded lengths must
// be sane.
func FuzzDecode(f *testing.F) {
	for _, fr := range seedFrames(f) {
		f.Add(uint8(0), fr)
	}
	for i, lt := range tracktest.LinkTypes {
		f.Add(uint8(i), tracktest.Frame(lt, tracktest.Segment{Src: netip.MustParseAddrPort("[2001:db8::1]:1"),
			Dst: netip.MustParseAddrPort("[2001:db8::2]:2"), SYN: true, TSval: 5}))
	}
	decs := make([]*track.Decoder, len(tracktest.LinkTypes))
	slow := make([]*track.Decoder, len(tracktest.LinkTypes))
	for i, lt := range tracktest.LinkTypes {
		decs[i], _ = track.NewDecoder(lt)
		slow[i], _ = track.NewDecoder(lt)
		slow[i].SetFast(false)
	}
	tr := track.New(track.Config{MaxConns: 64})
	f.Fuzz(func(t *testing.T, lt uint8, data []byte) {
		dec := decs[int(lt)%len(decs)]
		var p, q track.Packet
		err := dec.Decode(data, &p)
		if err == nil {
			if p.PayloadLen < 0 || p.PayloadLen > 1<<20 {
				t.Fatalf("payload length %d", p.PayloadLen)
			}
		}
		// The fast path decodes exactly as the parser.
		errSlow := slow[int(lt)%len(decs)].Decode(data, &q)
		if fmt.Sprint(err) != fmt.Sprint(errSlow) || err == nil && p != q {
			t.Fatalf("fast: %v %+v\nparser: %v %+v", err, p, errSlow, q)
		}
		tr.Frame(dec, data, int64(len(data))*1e6)
	})
}

// TestDecodeFastSame: on every frame of every corpus capture the
// decoder's fast path gives what the DecodingLayerParser gives.
func TestDecodeFastSame(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(testenv.Corpus(t, "pcap"), "*.pcap*"))
	for _, path := range paths {
		src, err := capture.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := track.NewDecoder(src.LinkType())
		if err != nil {
			src.Close()
			continue
		}
		slow, _ := track.NewDecoder(src.LinkType())
		slow.SetFast(false)
		n, ok := 0, 0
		for {
			data, _, err := src.ReadPacketData()
			if err != nil {
				break
			}
			var p, q track.Packet
			e1, e2 := fast.Decode(data, &p), slow.Decode(data, &q)
			if fmt.Sprint(e1) != fmt.Sprint(e2) || e1 == nil && p != q {
				t.Fatalf("%s frame %d: fast %v %+v, parser %v %+v", filepath.Base(path), n, e1, p, e2, q)
			}
			if e1 == nil {
				ok++
			}
			n++
		}
		src.Close()
		t.Logf("%s: %d frames, %d decoded", filepath.Base(path), n, ok)
		if ok == 0 {
			t.Errorf("%s: nothing decoded", filepath.Base(path))
		}
	}
}
