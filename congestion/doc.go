// Package congestion implements a user-space Congestion Manager (RFC 3124;
// Balakrishnan, Rahul and Seshan, SIGCOMM 1999) for the flows a process
// opens on top of kernel TCP.
//
// All flows to one destination host (by default: one destination address;
// see [Config.IPv4PrefixLen], [FlowInfo.Macroflow] and [Flow.SetMacroflow])
// form a macroflow. A macroflow shares one congestion window kept by a
// [Controller] (by default [AIMD], the window-based AIMD of RFC 3124 section
// 5.2), and a [Scheduler] (by default [WRR], weighted and, with priority
// hints, hierarchical deficit round robin) decides which of its flows may
// send next.
//
// # The RFC 3124 API in Go
//
//	RFC 3124                    this package
//	cm_open(src, dst, ...)      Manager.Open(FlowInfo) (*Flow, error)
//	cm_mtu                      Manager.MSS
//	cm_request + cmapp_send     Flow.Acquire(ctx, n) (Grant, error), or Flow.Request(n, fn)
//	cm_notify(nsent)            Flow.Notify(nsent)   (0 declines a grant)
//	cm_update(nrecd, nlost,     Flow.Update(nrecd, nlost, mode, rtt)
//	  lossmode, rtt)
//	cm_query                    Flow.Query() (rate, srtt, rttvar, ok)
//	cm_thresh + cmapp_update    Flow.Subscribe(Thresholds, func(Status))
//	cm_close                    Flow.Close()
//
// A sender asks for permission with [Flow.Acquire] (blocking, cancellable
// through its context) or [Flow.Request] (callback, like cmapp_send). The
// [Grant] allows up to Grant.N bytes. The sender then sends at most that
// much and calls [Flow.Notify] with what it really sent (0 to decline). As
// the receiver's feedback arrives it calls [Flow.Update] with the bytes
// received and lost, the kind of congestion signal ([LossMode]) and an RTT
// sample.
//
// # Robustness
//
// A grant not used within max(srtt, [Config.GrantTimeout]) expires and its
// bytes return to the macroflow, so a flow that crashes or forgets to call
// Notify cannot stall its macroflow (RFC 3124 section 3.3). Bytes a flow
// reported as sent but never acknowledged nor reported lost for
// [Config.StaleTimeout] are released as well. Updates are checked: nrecd and
// nlost are capped at the bytes the flow has outstanding (nrecd may also
// cover its current grant, for feedback read while the write is under
// way), and the window cannot grow by more than it would in slow start
// (doubling) within one srtt, so a flow cannot inflate the shared window
// with bogus updates.
//
// # Controller rules (AIMD)
//
// Slow start below ssthresh, additive increase of one MSS per window above
// it, halving on LossFeedback or ExplicitCongestion at most once per srtt
// per macroflow however many flows report the same loss, back to one MSS on
// NoFeedback (a timeout), and exponential aging: while bytes are
// outstanding, the window halves for every srtt without feedback (after the
// first, the normal wait for an ACK), down to [Config.MinWindow]. An idle
// macroflow (nothing outstanding: its flows had nothing to send) restarts
// as TCP does after idle (RFC 2861, RFC 5681 section 4.1): its window
// halves once per max(srtt+4*rttvar, [Config.IdleAgingPeriod]), never
// below min([Config.InitialWindow], window), and [Flow.Query] reports the
// delivery rate last measured while the network limited it.
//
// The manager passes on one congestion signal per loss episode of the
// macroflow (RFC 6582's recover point): until every byte outstanding at a
// signal is acknowledged or lost, later signals of any flow count only as
// lost bytes ([MacroflowStats.MergedSignals]), as an ordinary TCP flow
// reduces its window once per window of data.
//
// [Cubic] (RFC 9438) is the alternative controller for macroflows that
// compete with ordinary CUBIC flows (Linux's default): it reduces the
// window to 70% instead of half, so a macroflow takes one CUBIC flow's
// share where AIMD takes less (EXPERIMENT E1). [Vegas] is a delay-based
// one. [ValidateWindow] stops a window from growing while it is not used.
//
// # Rate
//
// [Flow.Query] and subscribers get the flow's share of the macroflow's
// rate: while the network limits the macroflow (a flow waits for window,
// or a [Conn]'s socket holds unsent bytes), the rate at which its bytes
// reached the receiver over the last max(srtt, 100 ms) (a Conn counts
// SACKed bytes as they arrive, so a loss recovery does not show as a dip
// and a spike); otherwise window/srtt, what it may send.
//
// # Conn
//
// [Conn] wraps a *net.TCPConn so that its writes go through a flow. The
// kernel's TCP_INFO is its feedback, read by one poller goroutine per
// Manager, by Write after a write(2), and before a Write waits for a
// grant. Bytes the socket holds unsent do not count in the window.
//
// # Temporal sharing (RFC 9040)
//
// A flow joining an active macroflow shares its window at once: the
// scheduler gives it its share on its next turn, with no slow start. When
// the last flow of a macroflow closes, the macroflow's state (window,
// ssthresh, srtt, rttvar) is remembered for [Config.RememberTTL]; a flow to
// that host opened later starts from it, aged as above but never below
// [Config.InitialWindow]. At most [Config.MaxMacroflows] macroflows, active
// or remembered, are kept; the least recently used remembered one is
// dropped first.
//
// # Time
//
// Every rule that depends on time reads the manager's [Clock], so tests can
// drive the manager with a fake clock and a simulated link.
package congestion
