//go:build !linux

package capture

import (
	"errors"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// LiveOptions configure a live capture (AF_PACKET: Linux only; use
// -tags libpcap elsewhere).
type LiveOptions struct {
	Interface   string
	Filter      *Filter
	BlockSize   int
	NumBlocks   int
	PollTimeout time.Duration
}

// LiveStats are the kernel's counters of a live capture.
type LiveStats struct{ Packets, Drops, QueueFreezes uint64 }

// Live is unavailable on this platform.
type Live struct{}

// ErrPermission is wrapped by OpenLive when the process may not capture.
var ErrPermission = errors.New("capture: live capture needs root or CAP_NET_RAW")

var errNoAFPacket = errors.New("capture: AF_PACKET live capture is Linux only; build with -tags libpcap")

// LinkTypeOf is unavailable on this platform.
func LinkTypeOf(string) (layers.LinkType, error) { return 0, errNoAFPacket }

// OpenLive is unavailable on this platform.
func OpenLive(LiveOptions) (*Live, error) { return nil, errNoAFPacket }

// ReadPacketData is unavailable on this platform.
func (*Live) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, errNoAFPacket
}

// LinkType is unavailable on this platform.
func (*Live) LinkType() layers.LinkType { return 0 }

// Stats is unavailable on this platform.
func (*Live) Stats() (LiveStats, error) { return LiveStats{}, errNoAFPacket }

// Close does nothing.
func (*Live) Close() error { return nil }

// DefaultPollTimeout is how often a live read returns when idle.
const DefaultPollTimeout = 200 * time.Millisecond
