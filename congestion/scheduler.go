package congestion

// Scheduler decides which waiting flow of a macroflow is granted window
// space next. The manager calls it with the macroflow's lock held.
type Scheduler interface {
	// Add and Remove tell the scheduler a flow joined or left the
	// macroflow. Remove also drops a pending wait.
	Add(f *Flow)
	Remove(f *Flow)
	// Wait marks f as waiting to send; Cancel withdraws it.
	Wait(f *Flow)
	Cancel(f *Flow)
	// Next returns the waiting flow to serve now and stops it waiting,
	// or returns nil when no flow waits.
	Next() *Flow
	// Charge tells the scheduler f was granted n bytes.
	Charge(f *Flow, n int)
}

// WRR is the default Scheduler: deficit round robin weighted by
// [FlowInfo.Weight], made hierarchical by [FlowInfo.Priority]. Flows of one
// priority form a class; classes take turns with quanta in proportion to
// 2^Priority, and within a class flows take turns with quanta in
// proportion to their weights. A class's share thus does not depend on
// how many flows it holds. A flow keeps its deficit while it is not
// waiting (so that one that re-requests after each grant loses nothing),
// but a positive deficit is capped at one quantum so an idle flow cannot
// save up a burst.
type WRR struct {
	mss     int
	flows   map[*Flow]*wrrFlow
	classes map[int]*wrrClass
	ring    []*wrrClass // classes with waiting flows, in turn order
}

type wrrFlow struct {
	f       *Flow
	class   *wrrClass
	deficit int
	waiting bool
}

type wrrClass struct {
	prio    int
	deficit int
	nflows  int
	ring    []*wrrFlow // waiting flows, in turn order
	inRing  bool
}

var _ Scheduler = (*WRR)(nil)

// NewWRR returns a WRR scheduler whose unit quantum is mss bytes.
func NewWRR(mss int) *WRR {
	return &WRR{mss: mss, flows: make(map[*Flow]*wrrFlow), classes: make(map[int]*wrrClass)}
}

func (s *WRR) classQuantum(c *wrrClass) int { return s.mss << c.prio }
func (s *WRR) flowQuantum(e *wrrFlow) int   { return s.mss * e.f.Weight() }

// Add implements Scheduler.
func (s *WRR) Add(f *Flow) {
	if _, ok := s.flows[f]; ok {
		return
	}
	c := s.classes[f.Priority()]
	if c == nil {
		c = &wrrClass{prio: f.Priority()}
		s.classes[c.prio] = c
	}
	c.nflows++
	e := &wrrFlow{f: f, class: c}
	e.deficit = s.flowQuantum(e)
	s.flows[f] = e
}

// Remove implements Scheduler.
func (s *WRR) Remove(f *Flow) {
	e, ok := s.flows[f]
	if !ok {
		return
	}
	s.Cancel(f)
	delete(s.flows, f)
	e.class.nflows--
	if e.class.nflows == 0 {
		delete(s.classes, e.class.prio)
	}
}

// Wait implements Scheduler.
func (s *WRR) Wait(f *Flow) {
	e, ok := s.flows[f]
	if !ok || e.waiting {
		return
	}
	e.waiting = true
	c := e.class
	c.ring = append(c.ring, e)
	if !c.inRing {
		c.inRing = true
		c.deficit = min(c.deficit, s.classQuantum(c))
		s.ring = append(s.ring, c)
	}
}

// Cancel implements Scheduler.
func (s *WRR) Cancel(f *Flow) {
	e, ok := s.flows[f]
	if !ok || !e.waiting {
		return
	}
	e.waiting = false
	c := e.class
	c.ring = deleteItem(c.ring, e)
	if len(c.ring) == 0 {
		c.inRing = false
		s.ring = deleteItem(s.ring, c)
	}
}

func deleteItem[T comparable](s []T, x T) []T {
	for i, y := range s {
		if y == x {
			copy(s[i:], s[i+1:])
			var zero T
			s[len(s)-1] = zero
			return s[:len(s)-1]
		}
	}
	return s
}

// deleteFirst removes the first element of s, keeping its backing array.
func deleteFirst[T any](s []T) []T {
	copy(s, s[1:])
	var zero T
	s[len(s)-1] = zero
	return s[:len(s)-1]
}

// rotate moves the first element of s to its end.
func rotate[T any](s []T) {
	if len(s) < 2 {
		return
	}
	first := s[0]
	copy(s, s[1:])
	s[len(s)-1] = first
}

// Next implements Scheduler.
func (s *WRR) Next() *Flow {
	for len(s.ring) > 0 {
		c := s.ring[0]
		if c.deficit <= 0 {
			c.deficit += s.classQuantum(c)
			rotate(s.ring)
			continue
		}
		for {
			e := c.ring[0]
			if e.deficit <= 0 {
				e.deficit += s.flowQuantum(e)
				rotate(c.ring)
				continue
			}
			e.waiting = false
			c.ring = deleteFirst(c.ring)
			if len(c.ring) == 0 {
				c.inRing = false
				s.ring = deleteFirst(s.ring)
			}
			return e.f
		}
	}
	return nil
}

// Charge implements Scheduler.
func (s *WRR) Charge(f *Flow, n int) {
	e, ok := s.flows[f]
	if !ok {
		return
	}
	e.deficit = min(e.deficit-n, s.flowQuantum(e))
	e.class.deficit = min(e.class.deficit-n, s.classQuantum(e.class))
}
