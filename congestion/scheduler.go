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

// WRR is the default Scheduler: weighted round robin among the flows of a
// macroflow by [FlowInfo.Weight], made hierarchical by [FlowInfo.Priority].
//
// Flows of one priority form a class. Classes share the window in
// proportion to 2^Priority, whatever the number of flows in each, and the
// flows of a class share the class's part in proportion to their weights.
//
// The round robin is kept in virtual time (start-time fair queueing): each
// flow and class carries a tag that grows by bytes granted / weight, and
// the waiting one with the smallest tag goes next. Unlike a deficit round
// robin, this keeps a flow's turn when it stops waiting between two
// grants, as senders that ask again after each grant do. A flow that was
// idle rejoins at the current virtual time, so it cannot save up credit.
type WRR struct {
	mss     int
	flows   map[*Flow]*wrrFlow
	classes map[int]*wrrClass
	active  []*wrrClass // classes with waiting flows
	vt      float64     // virtual time among classes
}

type wrrFlow struct {
	f       *Flow
	class   *wrrClass
	weight  float64
	tag     float64
	waiting bool
}

type wrrClass struct {
	prio    int
	weight  float64
	tag     float64
	vt      float64 // virtual time among the class's flows
	nflows  int
	waiting []*wrrFlow
}

var _ Scheduler = (*WRR)(nil)

// NewWRR returns a WRR scheduler. mss is kept for interface symmetry with
// byte-quantum schedulers; shares do not depend on it.
func NewWRR(mss int) *WRR {
	return &WRR{mss: mss, flows: make(map[*Flow]*wrrFlow), classes: make(map[int]*wrrClass)}
}

// Add implements Scheduler.
func (s *WRR) Add(f *Flow) {
	if _, ok := s.flows[f]; ok {
		return
	}
	c := s.classes[f.Priority()]
	if c == nil {
		c = &wrrClass{prio: f.Priority(), weight: float64(int(1) << f.Priority()), tag: s.vt}
		s.classes[c.prio] = c
	}
	c.nflows++
	s.flows[f] = &wrrFlow{f: f, class: c, weight: float64(max(f.Weight(), 1)), tag: c.vt}
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
	e.tag = max(e.tag, c.vt)
	if len(c.waiting) == 0 {
		c.tag = max(c.tag, s.vt)
		s.active = append(s.active, c)
	}
	c.waiting = append(c.waiting, e)
}

// Cancel implements Scheduler.
func (s *WRR) Cancel(f *Flow) {
	e, ok := s.flows[f]
	if !ok || !e.waiting {
		return
	}
	e.waiting = false
	c := e.class
	c.waiting = deleteAt(c.waiting, indexOf(c.waiting, e))
	if len(c.waiting) == 0 {
		s.active = deleteAt(s.active, indexOf(s.active, c))
	}
}

func indexOf[T comparable](s []T, x T) int {
	for i, y := range s {
		if y == x {
			return i
		}
	}
	return -1
}

// deleteAt removes s[i] keeping the order (ties go to the earliest
// waiter) and the backing array.
func deleteAt[T any](s []T, i int) []T {
	if i < 0 {
		return s
	}
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero
	return s[:len(s)-1]
}

// Next implements Scheduler.
func (s *WRR) Next() *Flow {
	if len(s.active) == 0 {
		return nil
	}
	ci := 0
	for i, c := range s.active {
		if c.tag < s.active[ci].tag {
			ci = i
		}
	}
	c := s.active[ci]
	fi := 0
	for i, e := range c.waiting {
		if e.tag < c.waiting[fi].tag {
			fi = i
		}
	}
	e := c.waiting[fi]
	s.vt, c.vt = c.tag, e.tag
	e.waiting = false
	c.waiting = deleteAt(c.waiting, fi)
	if len(c.waiting) == 0 {
		s.active = deleteAt(s.active, ci)
	}
	return e.f
}

// Charge implements Scheduler.
func (s *WRR) Charge(f *Flow, n int) {
	e, ok := s.flows[f]
	if !ok {
		return
	}
	e.tag += float64(n) / e.weight
	e.class.tag += float64(n) / e.class.weight
}
