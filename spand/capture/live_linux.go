//go:build linux

package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Defaults of LiveOptions.
const (
	DefaultBlockSize   = 1 << 20 // bytes per TPACKET_V3 ring block (holds 64 KB GSO frames)
	DefaultNumBlocks   = 64      // ring blocks: 64 MB of ring by default
	DefaultPollTimeout = 200 * time.Millisecond
	DefaultLiveSnapLen = 256 // link + IPv6 + extension + TCP headers with options
)

const bpfRetK = 0x06 // BPF_RET|BPF_K

// LiveOptions configure a live AF_PACKET capture. Zero fields take the
// Default constants.
type LiveOptions struct {
	// Interface to capture on; "" or "any" captures on all interfaces
	// (cooked: link headers removed, IP only).
	Interface string
	// Filter, if set, is attached in the kernel (compile it with
	// CompileFilter for the LinkType of the interface: see LinkTypeOf).
	Filter *Filter
	// SnapLen is how many bytes of each packet the kernel copies to the
	// ring. The tracker reads headers only and takes lengths from the IP
	// header, so the default keeps the ring small and drop-free.
	SnapLen     int
	BlockSize   int           // ring block size, a multiple of the page size
	NumBlocks   int           // ring blocks
	PollTimeout time.Duration // how often ReadPacketData returns to let Run look at its context
}

// Live is a live capture with AF_PACKET and a TPACKET_V3 memory-mapped
// ring, in pure Go.
type Live struct {
	tp   *afpacket.TPacket
	link layers.LinkType
}

// LiveStats are the kernel's counters of a live capture.
type LiveStats struct {
	Packets      uint64 // packets the kernel passed the filter
	Drops        uint64 // packets dropped because the ring was full
	QueueFreezes uint64 // TPACKET_V3 ring freezes
}

// LinkTypeOf returns the link type packets of iface arrive with (what a
// filter must be compiled for).
func LinkTypeOf(iface string) (layers.LinkType, error) {
	if iface == "" || iface == "any" {
		return layers.LinkTypeRaw, nil
	}
	arphrd, err := arphrdType(iface)
	if err != nil {
		return 0, fmt.Errorf("capture: interface %q: %w", iface, err)
	}
	switch arphrd {
	case 1, 772: // ARPHRD_ETHER, ARPHRD_LOOPBACK (Ethernet framing on Linux)
		return layers.LinkTypeEthernet, nil
	case 65534, 778, 776: // ARPHRD_NONE (tun, wireguard), IPGRE, SIT: bare IP
		return layers.LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("capture: interface %q: unsupported ARPHRD type %d", iface, arphrd)
}

// arphrdType is the ARPHRD type of iface in the calling thread's network
// namespace (SIOCGIFHWADDR), else as /sys tells it: /sys shows the
// namespace it was mounted in, which is not the thread's after setns (a
// capture opened inside a network namespace by a test or a supervisor).
func arphrdType(iface string) (int, error) {
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		defer unix.Close(fd)
		if ifr, err := unix.NewIfreq(iface); err == nil {
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err == nil {
				return int(ifr.Uint16()), nil // the hardware address's sa_family
			}
		}
	}
	b, err := os.ReadFile("/sys/class/net/" + iface + "/type")
	if err != nil {
		return 0, err
	}
	arphrd, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("type %q", b)
	}
	return arphrd, nil
}

// ErrPermission is wrapped by OpenLive when the process may not open
// packet sockets.
var ErrPermission = errors.New("capture: live capture needs root or CAP_NET_RAW")

// PermissionHint is the command that lets the program at path capture
// without root.
func PermissionHint(path string) string {
	return "sudo setcap cap_net_raw,cap_net_admin=eip " + path
}

// OpenLive opens a live capture.
func OpenLive(o LiveOptions) (*Live, error) {
	link, err := LinkTypeOf(o.Interface)
	if err != nil {
		return nil, err
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.NumBlocks <= 0 {
		o.NumBlocks = DefaultNumBlocks
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = DefaultPollTimeout
	}
	opts := []any{
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.OptBlockSize(o.BlockSize),
		afpacket.OptFrameSize(afpacket.DefaultFrameSize),
		afpacket.OptNumBlocks(o.NumBlocks),
		afpacket.OptPollTimeout(o.PollTimeout),
	}
	if link == layers.LinkTypeRaw {
		opts = append(opts, afpacket.SocketDgram)
	}
	if o.Interface != "" && o.Interface != "any" {
		opts = append(opts, afpacket.OptInterface(o.Interface))
	}
	tp, err := afpacket.NewTPacket(opts...)
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			exe, _ := os.Executable()
			if exe == "" {
				exe = "/path/to/spand"
			}
			return nil, fmt.Errorf("%w (capture on %q: %v); run as root or grant the capability once: %s",
				ErrPermission, o.Interface, err, PermissionHint(exe))
		}
		return nil, fmt.Errorf("capture: open %q: %w", o.Interface, err)
	}
	if o.SnapLen <= 0 {
		o.SnapLen = DefaultLiveSnapLen
	}
	// The kernel program: the filter (or "accept"), with every accepting
	// return cut to the snap length (a BPF return value is how many bytes
	// of the packet to keep), so the ring holds headers, not payloads.
	prog := []bpf.RawInstruction{{Op: bpfRetK, K: DefaultSnapLen}}
	expr := ""
	if o.Filter != nil {
		prog, expr = slices.Clone(o.Filter.Raw), o.Filter.Expr
	}
	for i := range prog {
		if prog[i].Op == bpfRetK && prog[i].K > uint32(o.SnapLen) {
			prog[i].K = uint32(o.SnapLen)
		}
	}
	// On lo every packet passes AF_PACKET twice, going out and coming
	// in; keep the incoming copy only, as libpcap does on lo. On "any"
	// the same holds for loopback traffic, while the outgoing packets of
	// the other interfaces are the host's own traffic and stay.
	switch {
	case isLoopback(o.Interface):
		prog = append(dropOutgoing(-1), prog...)
	case o.Interface == "" || o.Interface == "any":
		if lo, err := net.InterfaceByName("lo"); err == nil {
			prog = append(dropOutgoing(lo.Index), prog...)
		}
	}
	// The socket captured from its creation, before any filter: like
	// libpcap, attach a program that drops everything, drain what was
	// queued (a retired block shows up within the block timeout, shorter
	// than the poll timeout), then attach the real program.
	if err := tp.SetBPF([]bpf.RawInstruction{{Op: bpfRetK, K: 0}}); err != nil {
		tp.Close()
		return nil, fmt.Errorf("capture: attach filter: %w", err)
	}
	for {
		if _, _, err := tp.ZeroCopyReadPacketData(); err != nil {
			if !errors.Is(err, afpacket.ErrTimeout) {
				tp.Close()
				return nil, fmt.Errorf("capture: drain %q: %w", o.Interface, err)
			}
			break
		}
	}
	{
		if err := tp.SetBPF(prog); err != nil {
			tp.Close()
			return nil, fmt.Errorf("capture: attach filter %q: %w", expr, err)
		}
		// Count from here: what was drained is not the capture's.
		if err := tp.InitSocketStats(); err != nil {
			tp.Close()
			return nil, fmt.Errorf("capture: stats: %w", err)
		}
	}
	return &Live{tp: tp, link: link}, nil
}

func isLoopback(iface string) bool {
	t, err := arphrdType(iface)
	return err == nil && t == 772
}

// dropOutgoing is a BPF prologue rejecting packets the host sends
// (PACKET_OUTGOING), on interface index ifindex only unless it is -1. It
// reads the kernel's SKF_AD_PKTTYPE and SKF_AD_IFINDEX extensions, which
// only the kernel runs.
func dropOutgoing(ifindex int) []bpf.RawInstruction {
	ins := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4 /* PACKET_OUTGOING */, SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	}
	if ifindex >= 0 {
		ins = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 0, SkipFalse: 3},
			bpf.LoadExtension{Num: bpf.ExtInterfaceIndex},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(ifindex), SkipTrue: 0, SkipFalse: 1},
			bpf.RetConstant{Val: 0},
		}
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		panic(err) // constant program
	}
	return raw
}

// ReadPacketData returns the next packet (zero copy: valid until the next
// call). When no packet came within the poll timeout it returns an error
// that Run takes as a chance to look at its context.
func (l *Live) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := l.tp.ZeroCopyReadPacketData()
	if errors.Is(err, afpacket.ErrTimeout) {
		return nil, ci, errTimeout
	}
	return data, ci, err
}

// LinkType of the packets returned.
func (l *Live) LinkType() layers.LinkType { return l.link }

// Stats returns the kernel's packet and drop counters since the capture
// was opened.
func (l *Live) Stats() (LiveStats, error) {
	_, v3, err := l.tp.SocketStats()
	if err != nil {
		return LiveStats{}, fmt.Errorf("capture: stats: %w", err)
	}
	return LiveStats{Packets: uint64(v3.Packets()), Drops: uint64(v3.Drops()), QueueFreezes: uint64(v3.QueueFreezes())}, nil
}

// Close releases the socket and its ring.
func (l *Live) Close() error {
	l.tp.Close()
	return nil
}
