package congestion

// ValidateWindow wraps a controller so that its window grows only while
// the macroflow uses it (congestion window validation, RFC 7661): an
// Update whose bytes in flight before the acknowledgement (InFlight +
// Acked + Lost) were more than three segments below the window reports
// its acknowledged bytes to the controller as zero, so slow start and
// additive increase stop. Losses, ECN, timeouts and aging pass unchanged.
//
// A [Conn] needs it whenever the kernel's own congestion control, not the
// macroflow window, limits a connection (typically a macroflow of one
// connection): the bytes written sit in the socket, every ACK grows the
// window, and without validation the window ran away to 1.4 MB while
// 0.17 MB were in flight on a 10 Mbit/s path, so Query reported 15 times
// the real rate. Use it as
//
//	NewManager(Config{NewController: func(c ControllerConfig) Controller {
//		return ValidateWindow(NewAIMD(c), c.MSS)
//	}})
func ValidateWindow(c Controller, mss int) Controller {
	return &validated{Controller: c, mss: mss}
}

type validated struct {
	Controller
	mss int
}

// OnFeedback implements Controller.
func (v *validated) OnFeedback(fb Feedback) {
	if fb.Mode == NoCongestion && fb.InFlight+fb.Acked+fb.Lost < v.Window()-3*v.mss {
		fb.Acked = 0
	}
	v.Controller.OnFeedback(fb)
}
