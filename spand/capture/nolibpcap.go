//go:build !libpcap

package capture

import "errors"

// LibpcapAvailable is true in builds with the libpcap tag.
const LibpcapAvailable = false

// Pcap is the libpcap source; this build has none (build with -tags
// libpcap).
type Pcap struct{ Source }

var errNoLibpcap = errors.New("capture: built without libpcap (go build -tags libpcap)")

// OpenPcapLive needs the libpcap build tag.
func OpenPcapLive(iface string, snaplen int, filter string) (*Pcap, error) {
	return nil, errNoLibpcap
}

// OpenPcapFile needs the libpcap build tag.
func OpenPcapFile(path, filter string) (*Pcap, error) { return nil, errNoLibpcap }

// Stats needs the libpcap build tag.
func (*Pcap) Stats() (LiveStats, error) { return LiveStats{}, errNoLibpcap }
