package track

import (
	"net/netip"
	"slices"
	"time"
)

func addrPort(a netip.Addr, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(a.Unmap(), port)
}

func sortFlows(fs []*flow) {
	slices.SortFunc(fs, func(a, b *flow) int {
		switch {
		case a.conn.ID < b.conn.ID:
			return -1
		case a.conn.ID > b.conn.ID:
			return 1
		}
		return 0
	})
}

func (f *flow) stats(d int) *DirStats {
	if d == 0 {
		return &f.conn.AB
	}
	return &f.conn.BA
}

// tcp processes one TCP segment sent in direction d (0: a->b) at capture
// time p.Time. clock is the tracker's monotonic clock.
func (f *flow) tcp(p *Packet, d int, clock, busyGap int64) {
	now := p.Time
	f.last = now
	this, other := &f.dir[d], &f.dir[1-d]
	st := f.stats(d)
	c := &f.conn
	this.packets++
	st.Packets++
	if other.packets > 0 {
		f.established = true
	}

	syn := p.Flags&FlagSYN != 0
	fin := p.Flags&FlagFIN != 0
	if syn {
		this.synCount++
		this.synSeq = p.Seq
		this.synT = now
		if p.Flags&FlagACK != 0 {
			c.SYNACK = true
		} else {
			c.SYN = true
		}
	}
	if fin {
		this.finCount++
		if d == 0 {
			c.FinAB = true
		} else {
			c.FinBA = true
		}
	}
	if p.Flags&FlagRST != 0 {
		c.Reset = true
	}
	if f.closedAt == 0 && (c.Reset || c.FinAB && c.FinBA) {
		f.closedAt = clock
	}

	data := int64(p.PayloadLen)
	if data > 0 {
		st.DataPackets++
		st.DataBytes += uint64(data)
	}
	var unique int64
	if syn || fin || data > 0 {
		length := data
		if syn {
			length++
		}
		if fin {
			length++
		}
		// A segment sent into a zero window is a probe, neither new nor
		// retransmitted data (tcptrace).
		probe := other.win == 0 && other.packets > 0 && !syn
		if !probe {
			lo := this.unwrap(p.Seq)
			rex, ooo := this.send(lo, lo+length, now)
			if ooo {
				st.OutOfOrder++
			}
			rc, ln := rex, length
			if syn {
				ln--
				if this.synCount > 1 {
					rc--
				}
			}
			if fin {
				ln--
				if this.finCount > 1 {
					rc--
				}
			}
			if rc < ln {
				unique = ln - rc
				st.UniqueBytes += uint64(unique)
			}
			if rex > 0 {
				st.RexmtPackets++
				st.RexmtBytes += uint64(rex)
			}
		}
	}
	this.win = p.Window

	if p.Flags&FlagACK != 0 {
		if r := other.ack(p.Ack, now); r > 0 {
			f.rtt[1-d].add(r)
			ost := f.stats(1 - d)
			if ost.HandshakeLeg == 0 && other.synCount == 1 && p.Ack == other.synSeq+1 {
				ost.HandshakeLeg = time.Duration(r)
			}
		}
		// tshark's iRTT: A's SYN to A's ACK of B's SYN-ACK.
		if d == 0 && c.HandshakeRTT == 0 && !syn && c.SYN && other.synCount > 0 && p.Ack == other.synSeq+1 {
			if r := now - this.synT; r > 0 {
				c.HandshakeRTT = time.Duration(r)
			}
		}
	}
	if p.HasTS {
		this.sawTSval(p.TSval, now)
		if p.Flags&FlagACK != 0 && p.TSecr != 0 {
			if r := other.echo(p.TSecr, now); r > 0 {
				f.tsrtt[1-d].add(r)
			}
		}
	}

	if unique > 0 {
		f.reqResp(d, unique, now)
		f.hostData(d, unique, now, busyGap)
	}
}

// reqResp follows request/response exchanges: data from A is a request,
// the data from B that follows is its response.
func (f *flow) reqResp(d int, n, now int64) {
	if d == 0 {
		f.closeResponse()
		f.lastAData = now
		f.lastDataDir = 0
		return
	}
	if f.lastDataDir == 0 {
		if f.conn.Responses == 0 {
			f.respTime = now - f.lastAData
		}
		f.conn.Responses++
		f.inResp = true
		f.respFirst, f.respLast, f.respBytes = now, now, n
	} else if f.inResp {
		f.respLast = now
		f.respBytes += n
	}
	f.lastDataDir = 1
}

func (f *flow) closeResponse() {
	if f.inResp && f.respLast > f.respFirst {
		f.respTotBytes += f.respBytes
		f.respTotDur += f.respLast - f.respFirst
	}
	f.inResp = false
}

// udp processes one UDP datagram sent in direction d.
func (f *flow) udp(p *Packet, d int) {
	f.last = p.Time
	f.dir[d].packets++
	if f.dir[1-d].packets > 0 {
		f.established = true
	}
	st := f.stats(d)
	st.Packets++
	if p.PayloadLen > 0 {
		st.DataPackets++
		st.DataBytes += uint64(p.PayloadLen)
		st.UniqueBytes += uint64(p.PayloadLen)
	}
}

func us(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }

// finish fills in the derived fields of the record.
func (f *flow) finish(why EndReason) {
	c := &f.conn
	c.Reason = why
	c.Final = why != EndPeriodic
	c.First = time.Unix(0, f.first).UTC()
	c.Last = time.Unix(0, f.last).UTC()
	el := f.last - f.first
	for d := range 2 {
		st := f.stats(d)
		st.Throughput = 0
		if el > 0 {
			st.Throughput = float64(st.UniqueBytes) / (float64(el) / 1e9)
		}
		r, ts := &f.rtt[d], &f.tsrtt[d]
		st.RTTSamples, st.RTTMin, st.RTTMedian = r.n, us(r.min), us(r.median())
		st.TSRTTSamples, st.TSRTTMedian = ts.n, us(ts.median())
	}
	// End-to-end RTT: the two legs added up. A leg without data samples
	// falls back to its handshake leg.
	leg := func(d int, v time.Duration) time.Duration {
		if v == 0 {
			return f.stats(d).HandshakeLeg
		}
		return v
	}
	c.RTTMin = leg(0, c.AB.RTTMin) + leg(1, c.BA.RTTMin)
	c.RTTMedian = leg(0, c.AB.RTTMedian) + leg(1, c.BA.RTTMedian)
	c.TSRTTMedian = 0
	if c.AB.TSRTTSamples > 0 || c.BA.TSRTTSamples > 0 {
		c.TSRTTMedian = leg(0, c.AB.TSRTTMedian) + leg(1, c.BA.TSRTTMedian)
	}
	if c.HandshakeRTT == 0 && c.AB.HandshakeLeg > 0 && c.BA.HandshakeLeg > 0 {
		c.HandshakeRTT = c.AB.HandshakeLeg + c.BA.HandshakeLeg
	}
	// Response figures, counting a response still under way.
	bytes, dur := f.respTotBytes, f.respTotDur
	if f.inResp && f.respLast > f.respFirst {
		bytes += f.respBytes
		dur += f.respLast - f.respFirst
	}
	c.ResponseTime = time.Duration(f.respTime)
	c.ResponseRate = 0
	if dur > 0 {
		c.ResponseRate = float64(bytes) / (float64(dur) / 1e9)
	}
	f.hostRates()
	c.Complete = c.SYN && c.SYNACK && (c.Reset || c.FinAB && c.FinBA)
	c.Class = classify(f)
}
