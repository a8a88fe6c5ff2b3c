//go:build libpcap

package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
)

// LibpcapAvailable is true in builds with the libpcap tag.
const LibpcapAvailable = true

// Pcap is a packet source backed by libpcap (build tag libpcap), for
// platforms without AF_PACKET or capture files libpcap reads and pcapgo
// does not. Its filter runs in libpcap (in the kernel when live).
type Pcap struct {
	h *pcap.Handle
}

// OpenPcapLive opens a live libpcap capture on iface with a tcpdump filter.
func OpenPcapLive(iface string, snaplen int, filter string) (*Pcap, error) {
	if snaplen <= 0 {
		snaplen = DefaultSnapLen
	}
	h, err := pcap.OpenLive(iface, int32(snaplen), true, DefaultPollTimeout)
	if err != nil {
		if strings.Contains(err.Error(), "permitted") || strings.Contains(err.Error(), "permission") {
			exe, _ := os.Executable()
			return nil, fmt.Errorf("%w (libpcap on %q: %v); run as root or: %s", ErrPermission, iface, err, "sudo setcap cap_net_raw,cap_net_admin=eip "+exe)
		}
		return nil, fmt.Errorf("capture: libpcap %q: %w", iface, err)
	}
	return newPcap(h, filter)
}

// OpenPcapFile reads a capture file with libpcap.
func OpenPcapFile(path, filter string) (*Pcap, error) {
	h, err := pcap.OpenOffline(path)
	if err != nil {
		return nil, fmt.Errorf("capture: libpcap %s: %w", path, err)
	}
	return newPcap(h, filter)
}

func newPcap(h *pcap.Handle, filter string) (*Pcap, error) {
	if filter != "" {
		if err := h.SetBPFFilter(filter); err != nil {
			h.Close()
			return nil, fmt.Errorf("%w %q: libpcap: %v", ErrFilter, filter, err)
		}
	}
	return &Pcap{h: h}, nil
}

// ReadPacketData returns the next packet (valid until the next call).
func (p *Pcap) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := p.h.ZeroCopyReadPacketData()
	if errors.Is(err, pcap.NextErrorTimeoutExpired) {
		return nil, ci, errTimeout
	}
	if errors.Is(err, pcap.NextErrorNoMorePackets) {
		return nil, ci, io.EOF
	}
	return data, ci, err
}

// LinkType of the capture.
func (p *Pcap) LinkType() layers.LinkType { return p.h.LinkType() }

// Stats returns libpcap's counters (live captures).
func (p *Pcap) Stats() (LiveStats, error) {
	s, err := p.h.Stats()
	if err != nil {
		return LiveStats{}, fmt.Errorf("capture: libpcap stats: %w", err)
	}
	return LiveStats{Packets: uint64(s.PacketsReceived), Drops: uint64(s.PacketsDropped + s.PacketsIfDropped)}, nil
}

// Close closes the handle.
func (p *Pcap) Close() error {
	p.h.Close()
	return nil
}
