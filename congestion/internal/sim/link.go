package sim

import (
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// Link is a bottleneck: a FIFO queue of QueueBytes drained at Rate bytes
// per second, with Delay of propagation each way. A packet that does not
// fit in the queue is dropped; its sender learns of the loss when the
// ACKs of later packets would tell it (one RTT later). With ECNBytes set,
// packets that find more than ECNBytes queued are marked instead of being
// delayed silently.
type Link struct {
	Clock      *Clock
	Rate       float64 // bytes per second
	QueueBytes int
	Delay      time.Duration // one way
	ECNBytes   int           // mark above this backlog; 0: no ECN

	busyUntil time.Time // when the queue drains
	Dropped   int       // packets dropped
	Sent      int       // packets accepted
}

// backlog returns the bytes queued now.
func (l *Link) backlog(now time.Time) int {
	if !l.busyUntil.After(now) {
		return 0
	}
	return int(l.busyUntil.Sub(now).Seconds() * l.Rate)
}

// Send puts a packet of size bytes on the link. ack runs when its ACK is
// back at the sender, with the RTT and whether it was ECN-marked; lost
// runs when the sender would detect its loss.
func (l *Link) Send(size int, ack func(rtt time.Duration, ce bool), lost func()) {
	now := l.Clock.Now()
	b := l.backlog(now)
	qdelay := time.Duration(float64(b) / l.Rate * float64(time.Second))
	if b+size > l.QueueBytes {
		l.Dropped++
		l.Clock.After(qdelay+2*l.Delay, lost)
		return
	}
	l.Sent++
	ce := l.ECNBytes > 0 && b > l.ECNBytes
	start := l.busyUntil
	if start.Before(now) {
		start = now
	}
	l.busyUntil = start.Add(time.Duration(float64(size) / l.Rate * float64(time.Second)))
	rtt := l.busyUntil.Sub(now) + 2*l.Delay
	l.Clock.After(rtt, func() { ack(rtt, ce) })
}

// SetRate changes the bottleneck rate from now on.
func (l *Link) SetRate(rate float64) { l.Rate = rate }

// Sender drives one congestion.Flow over a Link: it keeps a request
// pending while it has data (Remaining < 0 means always), sends each
// grant as MSS-sized packets, notifies, and reports every ACK and loss
// with Update.
type Sender struct {
	Flow      *congestion.Flow
	Link      *Link
	MSS       int
	Request   int // bytes asked per grant (default 16 MSS)
	Remaining int // bytes left to send; < 0: backlogged forever

	// SilentACKs drops all feedback (the ACK path is silent) while true.
	SilentACKs bool
	// Stopped stops asking for grants.
	Stopped bool

	Acked   int // bytes acknowledged
	Lost    int // bytes lost
	Grants  int
	Granted int // bytes granted
}

// Start makes the first request.
func (s *Sender) Start() {
	if s.Request <= 0 {
		s.Request = 16 * s.MSS
	}
	s.ask()
}

func (s *Sender) ask() {
	if s.Stopped || s.Remaining == 0 {
		return
	}
	n := s.Request
	if s.Remaining > 0 {
		n = min(n, s.Remaining)
	}
	if err := s.Flow.Request(n, s.onGrant); err != nil {
		panic("sim: request: " + err.Error())
	}
}

func (s *Sender) onGrant(g congestion.Grant) {
	s.Grants++
	s.Granted += g.N
	n := g.N
	if s.Remaining > 0 {
		s.Remaining -= n
	}
	for left := n; left > 0; left -= s.MSS {
		size := min(left, s.MSS)
		s.Link.Send(size, func(rtt time.Duration, ce bool) {
			if s.SilentACKs {
				return
			}
			s.Acked += size
			mode := congestion.NoCongestion
			if ce {
				mode = congestion.ExplicitCongestion
			}
			s.Flow.Update(size, 0, mode, rtt)
		}, func() {
			if s.SilentACKs {
				return
			}
			s.Lost += size
			s.Flow.Update(0, size, congestion.LossFeedback, 0)
		})
	}
	s.Flow.Notify(n)
	// Ask again from the event loop, not from inside this callback.
	s.Link.Clock.After(0, s.ask)
}
