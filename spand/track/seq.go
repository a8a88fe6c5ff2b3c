package track

import (
	"slices"
)

// Sizes of the fixed per-direction tracking state. They bound the memory
// of one connection whatever the traffic does.
const (
	maxHoles   = 8   // gaps remembered below the highest sequence number seen
	maxSegs    = 32  // outstanding segments remembered for data-to-ACK RTT
	maxTSvals  = 16  // TSvals remembered for timestamp RTT
	maxSamples = 128 // RTT samples kept per direction for the median (reservoir beyond)
)

// span is a half-open range [lo, hi) of unwrapped sequence numbers.
type span struct{ lo, hi int64 }

// seg is one transmitted segment awaiting its ACK.
type seg struct {
	lo, hi  int64 // sequence range, unwrapped
	t       int64 // time of the last transmission, ns
	retrans bool  // sent more than once: no RTT sample (Karn)
	acked   bool  // partly acknowledged already: no sample either
}

type tsval struct {
	val uint32
	t   int64
}

// seqSpace follows the sequence space of one direction: what has been
// covered (to tell retransmissions and unique bytes apart, as tcptrace's
// segment lists do), the segments awaiting ACKs, and the TSvals awaiting
// their echo.
type seqSpace struct {
	init   bool
	ref    int64 // last unwrapped value, reference for unwrapping
	base   int64 // lowest covered sequence number
	high   int64 // one past the highest covered sequence number
	holes  [maxHoles]span
	nholes int

	segs  [maxSegs]seg // ring, oldest first from segHead
	segHd int
	segN  int

	ts     [maxTSvals]tsval // ring of first sightings
	tsHd   int
	tsN    int
	lastTS uint32
	haveTS bool

	synT     int64 // time of the (last) SYN sent in this direction
	synCount int
	finCount int
	synSeq   uint32
	win      uint16 // last advertised window
	packets  uint64
}

// unwrap maps a 32-bit sequence number to 64 bits near the last one seen.
func (s *seqSpace) unwrap(v uint32) int64 {
	if !s.init {
		return int64(v) + 1<<32
	}
	return s.ref + int64(int32(v-uint32(s.ref)))
}

// covered returns how many bytes of [lo, hi) were covered before.
func (s *seqSpace) covered(lo, hi int64) int64 {
	a, b := max(lo, s.base), min(hi, s.high)
	if a >= b {
		return 0
	}
	n := b - a
	for i := 0; i < s.nholes; i++ {
		h := s.holes[i]
		if x, y := max(a, h.lo), min(b, h.hi); x < y {
			n -= y - x
		}
	}
	return n
}

func (s *seqSpace) addHole(lo, hi int64) {
	if lo >= hi {
		return
	}
	if s.nholes == maxHoles {
		// Forget the lowest hole: its bytes count as covered from now on,
		// so a late fill is taken for a retransmission. Rare, and bounded.
		low := 0
		for i := 1; i < s.nholes; i++ {
			if s.holes[i].lo < s.holes[low].lo {
				low = i
			}
		}
		s.holes[low] = s.holes[s.nholes-1]
		s.nholes--
	}
	s.holes[s.nholes] = span{lo, hi}
	s.nholes++
}

// fill removes [lo, hi) from the holes.
func (s *seqSpace) fill(lo, hi int64) {
	for i := 0; i < s.nholes; {
		h := s.holes[i]
		if hi <= h.lo || lo >= h.hi {
			i++
			continue
		}
		// Overlap: keep what is left on either side.
		left, right := span{h.lo, lo}, span{hi, h.hi}
		s.holes[i] = s.holes[s.nholes-1]
		s.nholes--
		if left.lo < left.hi {
			s.addHole(left.lo, left.hi)
		}
		if right.lo < right.hi {
			s.addHole(right.lo, right.hi)
		}
		// The replacement at i (and any hole added at the end) still has
		// to be looked at: do not advance i.
	}
}

// send records the sequence range [lo, hi) (SYN and FIN count one each,
// as in tcptrace) and returns the bytes of it that were sent before and
// whether it filled a gap below the highest sequence number (out of
// order).
func (s *seqSpace) send(lo, hi int64, now int64) (rexmt int64, outOfOrder bool) {
	if hi <= lo {
		return 0, false
	}
	if !s.init {
		s.init = true
		s.base, s.high = lo, hi
		s.ref = hi
		s.pushSeg(lo, hi, now)
		return 0, false
	}
	rexmt = s.covered(lo, hi)
	newBytes := (hi - lo) - rexmt
	if newBytes > 0 && lo < s.high {
		outOfOrder = true
	}
	if rexmt > 0 {
		// Karn: every remembered segment this one overlaps was sent again.
		for i, j := 0, s.segHd; i < s.segN; i, j = i+1, (j+1)%maxSegs {
			g := &s.segs[j]
			if g.lo < hi && lo < g.hi {
				g.retrans = true
				g.t = now
			}
		}
	}
	oldHigh := s.high
	if lo < s.base {
		if hi < s.base {
			s.addHole(hi, s.base)
		}
		s.base = lo
	}
	if hi > s.high {
		if lo > s.high {
			s.addHole(s.high, lo)
		}
		s.high = hi
	}
	s.fill(lo, hi)
	if hi > oldHigh {
		// The new part beyond what was sent is a fresh transmission.
		s.pushSeg(max(lo, oldHigh), hi, now)
	} else if rexmt == 0 {
		s.pushSeg(lo, hi, now) // filled a hole
	}
	if hi > s.ref {
		s.ref = hi
	}
	return rexmt, outOfOrder
}

func (s *seqSpace) pushSeg(lo, hi, now int64) {
	if s.segN == maxSegs { // forget the oldest: its ACK gives no sample
		s.segHd = (s.segHd + 1) % maxSegs
		s.segN--
	}
	s.segs[(s.segHd+s.segN)%maxSegs] = seg{lo: lo, hi: hi, t: now}
	s.segN++
}

// ack processes a cumulative ACK of this direction's data at time now and
// returns an RTT sample in ns (0 if none), following tcptrace: only an ACK
// exactly at the end of a segment sent once, with no earlier segment sent
// again since, gives a sample.
func (s *seqSpace) ack(a uint32, now int64) (rtt int64) {
	if !s.init || s.segN == 0 {
		return 0
	}
	ack := s.unwrap(a)
	var lastXmit int64
	n := 0
	for i, j := 0, s.segHd; i < s.segN; i, j = i+1, (j+1)%maxSegs {
		g := &s.segs[j]
		if ack <= g.lo {
			break
		}
		if ack == g.hi && !g.retrans && !g.acked && lastXmit <= g.t {
			rtt = now - g.t
		}
		lastXmit = max(lastXmit, g.t)
		if g.hi <= ack {
			n++
		} else {
			g.acked = true
		}
	}
	// Drop the fully acknowledged segments.
	s.segHd = (s.segHd + n) % maxSegs
	s.segN -= n
	if rtt < 0 {
		rtt = 0 // time went backwards in a merged capture
	}
	return rtt
}

// sawTSval records the first sighting of a TSval sent in this direction.
func (s *seqSpace) sawTSval(v uint32, now int64) {
	if s.haveTS && int32(v-s.lastTS) <= 0 {
		return // seen before (or older)
	}
	s.haveTS, s.lastTS = true, v
	if s.tsN == maxTSvals {
		s.tsHd = (s.tsHd + 1) % maxTSvals
		s.tsN--
	}
	s.ts[(s.tsHd+s.tsN)%maxTSvals] = tsval{v, now}
	s.tsN++
}

// echo matches a TSecr from the other direction against the TSvals sent
// in this one and returns the RTT in ns (0 if none). Each TSval is matched
// once: it and every older one are dropped.
func (s *seqSpace) echo(ecr uint32, now int64) int64 {
	for i, j := 0, s.tsHd; i < s.tsN; i, j = i+1, (j+1)%maxTSvals {
		if s.ts[j].val == ecr {
			rtt := now - s.ts[j].t
			s.tsHd = (j + 1) % maxTSvals
			s.tsN -= i + 1
			if rtt < 0 {
				return 0
			}
			return rtt
		}
	}
	return 0
}

// samples is a bounded set of RTT samples (microseconds) with an exact
// minimum and a reservoir for the median.
type samples struct {
	buf  []uint32
	n    int // samples offered
	min  uint32
	seed uint32
}

func (m *samples) reset() {
	m.buf = m.buf[:0]
	m.n, m.min, m.seed = 0, 0, 0
}

func (m *samples) add(ns int64) {
	us := ns / 1000
	if us > 1<<32-1 {
		us = 1<<32 - 1
	}
	v := uint32(us)
	if v == 0 {
		v = 1 // a sub-microsecond RTT is still a sample; 0 means none
	}
	m.n++
	if m.n == 1 || v < m.min {
		m.min = v
	}
	if len(m.buf) < maxSamples {
		if m.buf == nil {
			m.buf = make([]uint32, 0, maxSamples)
		}
		m.buf = append(m.buf, v)
		return
	}
	// Reservoir sampling with a small deterministic generator (xorshift),
	// so that results do not depend on a global random source.
	m.seed ^= m.seed << 13
	m.seed ^= m.seed >> 17
	m.seed ^= m.seed << 5
	if m.seed == 0 {
		m.seed = 2463534242
	}
	if k := int(m.seed % uint32(m.n)); k < maxSamples {
		m.buf[k] = v
	}
}

// median returns the median of the kept samples in µs (the mean of the
// two middle ones for an even count). It reorders the samples in place.
func (m *samples) median() uint32 {
	k := len(m.buf)
	if k == 0 {
		return 0
	}
	hi := selectNth(m.buf, k/2)
	if k%2 == 1 {
		return hi
	}
	// The lower middle is the largest of the elements left of k/2.
	lo := slices.Max(m.buf[:k/2])
	return uint32((uint64(lo) + uint64(hi)) / 2)
}

// selectNth reorders a so that a[n] is the element a sorted a would hold
// there, everything before it no larger and everything after no smaller
// (Hoare's selection: linear time on average, where sorting for a median
// showed in profiles).
func selectNth(a []uint32, n int) uint32 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		if hi-lo < 12 {
			// A short range: insertion sort is cheaper than partitioning.
			for i := lo + 1; i <= hi; i++ {
				for j := i; j > lo && a[j] < a[j-1]; j-- {
					a[j], a[j-1] = a[j-1], a[j]
				}
			}
			return a[n]
		}
		// Median of three as the pivot.
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		p := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < p {
				i++
			}
			for a[j] > p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case n <= j:
			hi = j
		case n >= i:
			lo = i
		default:
			return a[n]
		}
	}
	return a[n]
}
