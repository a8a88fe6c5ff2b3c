package track

// Thresholds of the behavioural classification (see the package
// documentation).
const (
	// BulkBytes: a direction that carried at least this many unique bytes
	// makes the connection bulk, whatever its port, when its segments are
	// large (a file copy over ssh is bulk, not interactive).
	BulkBytes = 256 << 10
	// InteractiveSegment: average payload per data packet below this in
	// both directions is keystroke-sized.
	InteractiveSegment = 128
	// BulkMinBytes: below this a connection on an unknown port is not
	// called bulk for its volume alone.
	BulkMinBytes = 64 << 10
	// RealtimeMinPackets and RealtimeMinRate: a UDP flow of at least this
	// many packets at this many packets/s or more is a media stream.
	RealtimeMinPackets = 20
	RealtimeMinRate    = 5.0
)

var webPorts = map[uint16]bool{80: true, 443: true, 8000: true, 8008: true, 8080: true, 8443: true, 8888: true, 3128: true}

var interactivePorts = map[uint16]bool{22: true, 23: true, 513: true, 3389: true, 5900: true, 5901: true}

var bulkPorts = map[uint16]bool{20: true, 21: true, 873: true, 445: true, 2049: true, 119: true, 25: true, 587: true}

var udpServicePorts = map[uint16]bool{53: true, 67: true, 68: true, 123: true, 137: true, 138: true, 161: true, 162: true, 514: true, 1900: true, 5353: true, 5355: true}

func realtimePort(p uint16) bool {
	switch {
	case p == 3478 || p == 3479 || p == 5004 || p == 5005 || p == 5060 || p == 5061:
		return true // STUN/TURN, RTP/RTCP, SIP
	case p >= 16384 && p <= 32767:
		return true // the usual RTP range
	case p == 3074 || p >= 27000 && p <= 27050:
		return true // game ports (Xbox Live, Steam)
	}
	return false
}

// portIn reports whether either endpoint's port is in set.
func (c *Conn) portIn(set map[uint16]bool) bool {
	return set[c.B.Port()] || set[c.A.Port()]
}

func avgSeg(s *DirStats) uint64 {
	if s.DataPackets == 0 {
		return 0
	}
	return s.DataBytes / s.DataPackets
}

func classify(f *flow) Class {
	c := &f.conn
	if c.Proto == UDP {
		return classifyUDP(c)
	}
	if c.AB.DataBytes == 0 && c.BA.DataBytes == 0 {
		return ClassOther
	}
	big := &c.AB
	if c.BA.UniqueBytes > c.AB.UniqueBytes {
		big = &c.BA
	}
	bulkVolume := big.UniqueBytes >= BulkBytes && avgSeg(big) >= 512
	switch {
	case c.portIn(webPorts):
		return ClassWeb
	case bulkVolume:
		return ClassBulk
	case c.portIn(interactivePorts):
		return ClassInteractive
	case c.portIn(bulkPorts):
		return ClassBulk
	case avgSeg(&c.AB) < InteractiveSegment && avgSeg(&c.BA) < InteractiveSegment:
		return ClassInteractive
	case big.UniqueBytes >= BulkMinBytes:
		return ClassBulk
	case c.Responses > 0:
		return ClassWeb
	case c.AB.DataBytes == 0 || c.BA.DataBytes == 0:
		return ClassBulk // a short one-way transfer
	}
	return ClassInteractive
}

func classifyUDP(c *Conn) Class {
	if c.portIn(udpServicePorts) {
		return ClassOther
	}
	if realtimePort(c.A.Port()) || realtimePort(c.B.Port()) {
		return ClassRealtime
	}
	n := c.AB.Packets + c.BA.Packets
	el := c.Elapsed()
	if n >= RealtimeMinPackets && el > 0 && float64(n)/el.Seconds() >= RealtimeMinRate &&
		(c.AB.DataPackets == 0 || avgSeg(&c.AB) <= 1400) && (c.BA.DataPackets == 0 || avgSeg(&c.BA) <= 1400) {
		return ClassRealtime
	}
	return ClassOther
}
