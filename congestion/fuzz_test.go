package congestion_test

import (
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
)

// FuzzFlowOps runs arbitrary sequences of flow operations (the feedback a
// Conn derives from TCP_INFO is untrusted arithmetic) on a fake clock and
// checks the manager's invariants after each: no negative counts, the
// window within [MSS, MaxWindow], and, once every flow is closed,
// nothing left outstanding, granted or waiting.
func FuzzFlowOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7})
	f.Add([]byte{2, 255, 3, 255, 4, 0, 2, 10, 5, 9, 9, 9, 9, 6, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		h := newHarness(t, congestion.Config{MaxWindow: 1 << 22, GrantTimeout: 10 * time.Millisecond})
		var flows []*congestion.Flow
		for i := range 3 {
			flows = append(flows, h.open(congestion.FlowInfo{Dst: host(i % 2), Weight: 1 + i}))
		}
		cfg := h.m.Config()
		for i := 0; i+1 < len(ops); i += 2 {
			fl := flows[int(ops[i]>>4)%len(flows)]
			arg := int(ops[i+1])
			switch ops[i] % 10 {
			case 0:
				fl.Request(1+arg*100, func(congestion.Grant) {})
			case 1:
				fl.Notify(arg * 97)
			case 2:
				fl.Update(arg*113, 0, congestion.NoCongestion, time.Duration(arg)*time.Millisecond)
			case 3:
				fl.Update(arg*7, arg*11, congestion.LossFeedback, 0)
			case 4:
				fl.Update(0, arg, congestion.NoFeedback, 0)
			case 5:
				fl.Update(arg, 0, congestion.ExplicitCongestion, time.Duration(arg)*time.Microsecond)
			case 6:
				h.clock.Advance(time.Duration(arg) * time.Millisecond)
			case 7:
				fl.CancelRequest()
			case 8:
				fl.Query()
			case 9:
				if arg%4 == 0 {
					fl.SetMacroflow("x")
				}
			}
			for _, g := range flows {
				s := g.Macroflow().Stats()
				if s.Outstanding < 0 || s.Granted < 0 || s.Window < cfg.MSS || s.Window > cfg.MaxWindow {
					t.Fatalf("op %d: invariant broken: %+v", i/2, s)
				}
			}
		}
		for _, g := range flows {
			g.Close()
		}
		for _, g := range flows {
			if s := g.Macroflow().Stats(); s.Flows != 0 || s.Outstanding != 0 || s.Granted != 0 || s.Waiting != 0 {
				t.Fatalf("after closing all: %+v", s)
			}
		}
	})
}
