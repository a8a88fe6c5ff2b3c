package congestion

import (
	"sync"
	"time"
)

// poller reads the kernel feedback of a manager's Conns: one goroutine per
// Manager, started with its first Conn and ended with its last, instead
// of a goroutine and a timer per Conn. Each Conn says when it wants its
// next poll (Conn.pollOnce returns it: the poll interval while it has
// bytes in flight or a Write waits, srtt/4 when idle); a Write that
// starts on an idle Conn, or that waits for a grant, brings its poll
// forward (due). Writes also read TCP_INFO themselves after a write(2)
// when the last poll is a poll interval old (Conn.Write), so a busy
// writer rarely needs the poller at all.
type poller struct {
	mu      sync.Mutex
	conns   map[*Conn]time.Time // next poll of each Conn
	wake    chan struct{}       // buffered: an earlier poll was asked for
	running bool
}

// add registers c; its first poll is one poll interval from now.
func (p *poller) add(c *Conn) {
	p.mu.Lock()
	if p.conns == nil {
		p.conns = make(map[*Conn]time.Time)
		p.wake = make(chan struct{}, 1)
	}
	p.conns[c] = time.Now().Add(c.cfg.PollInterval)
	if !p.running {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
	p.kick()
}

// remove unregisters c; the goroutine ends when no Conn is left.
func (p *poller) remove(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.kick()
}

// due asks for c to be polled no later than at.
func (p *poller) due(c *Conn, at time.Time) {
	p.mu.Lock()
	cur, ok := p.conns[c]
	earlier := ok && at.Before(cur)
	if earlier {
		p.conns[c] = at
	}
	p.mu.Unlock()
	if earlier {
		p.kick()
	}
}

func (p *poller) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *poller) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var batch []*Conn
	for {
		p.mu.Lock()
		if len(p.conns) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		now := time.Now()
		var next time.Time
		batch = batch[:0]
		for c, at := range p.conns {
			switch {
			case !now.Before(at):
				batch = append(batch, c)
			case next.IsZero() || at.Before(next):
				next = at
			}
		}
		p.mu.Unlock()
		if len(batch) > 0 {
			for _, c := range batch {
				at := time.Now().Add(c.pollOnce())
				p.mu.Lock()
				if _, ok := p.conns[c]; ok {
					p.conns[c] = at
				}
				p.mu.Unlock()
			}
			clear(batch)
			continue
		}
		t.Reset(time.Until(next))
		select {
		case <-t.C:
		case <-p.wake:
		}
	}
}
