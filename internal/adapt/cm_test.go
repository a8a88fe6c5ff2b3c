package adapt

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
)

// activityTable is a fixed HostActivity.
type activityTable map[netip.Addr]Host

func (a activityTable) Activity(addr netip.Addr) (Host, bool) {
	h, ok := a[addr]
	return h, ok
}

// TestCM: the congestion manager's predictor answers with the client's
// macroflow rate and srtt once it has RTT feedback, enough bytes and
// recent writes; otherwise it leaves the answer to the next predictor.
func TestCM(t *testing.T) {
	m := congestion.NewManager(congestion.Config{})
	defer m.Close()
	client := netip.MustParseAddr("10.0.0.7")
	f, err := m.Open(congestion.FlowInfo{Dst: netip.AddrPortFrom(client, 3128)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := f.Acquire(context.Background(), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	f.Notify(g.N)
	f.Update(g.N, 0, congestion.NoCongestion, 50*time.Millisecond)
	st := m.Macroflow("10.0.0.7/32").Stats()
	if st.SRTT <= 0 || st.Rate <= 0 {
		t.Fatalf("macroflow after an update: %+v", st)
	}
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name     string
		addr     string
		activity HostActivity
		capped   float64 // the rate expected when below the macroflow's
		ok       bool
	}{
		{"no macroflow", "10.0.0.8", nil, 0, false},
		{"mapped address, no activity check", "::ffff:10.0.0.7", nil, 0, true},
		{"host never written to", "10.0.0.7", activityTable{}, 0, false},
		{"too few bytes", "10.0.0.7", activityTable{client: {Written: DefaultCMMinBytes - 1, LastWrite: now}}, 0, false},
		{"idle", "10.0.0.7", activityTable{client: {Written: 1 << 20, LastWrite: now.Add(-DefaultCMMaxIdle - time.Millisecond)}}, 0, false},
		{"live", "10.0.0.7", activityTable{client: {Written: 1 << 20, LastWrite: now.Add(-time.Second)}}, 0, true},
		{"live, capped by the delivered rate", "10.0.0.7", activityTable{client: {Written: 1 << 20, LastWrite: now, Delivered: 1000, DeliveredAt: now.Add(-time.Second)}}, 1000, true},
		{"live, delivered rate of an older burst", "10.0.0.7", activityTable{client: {Written: 1 << 20, LastWrite: now, Delivered: 1000, DeliveredAt: now.Add(-time.Hour)}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &CM{Manager: m, Activity: tt.activity, now: func() time.Time { return now }}
			p, ok := c.Predict(context.Background(), netip.MustParseAddr(tt.addr))
			if ok != tt.ok {
				t.Fatalf("Predict(%s) = %+v, %t; want ok %t", tt.addr, p, ok, tt.ok)
			}
			if !ok {
				return
			}
			st := m.Macroflow("10.0.0.7/32").Stats()
			if p.RTT != st.SRTT || p.Throughput <= 0 || p.Throughput > st.Rate*1.01 || p.Reports < 1000 {
				t.Errorf("prediction %+v; macroflow %+v", p, st)
			}
			if tt.capped > 0 && p.Throughput != tt.capped {
				t.Errorf("rate %v, want it capped at the delivered %v", p.Throughput, tt.capped)
			}
			if tt.capped == 0 && p.Throughput < st.Rate*0.99 {
				t.Errorf("rate %v, want the macroflow's %v", p.Throughput, st.Rate)
			}
		})
	}
	if _, ok := (*CM)(nil).Predict(context.Background(), client); ok {
		t.Error("a nil CM answered")
	}
}

// TestChain: the first predictor that answers wins; nil entries and
// predictors without an answer are skipped.
func TestChain(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	none := &policy.StaticPredictor{}
	slow, fast := policy.FixedPredictor(100_000), policy.FixedPredictor(50_000_000)
	tests := []struct {
		name  string
		chain Chain
		want  float64 // bytes/s; 0: no answer
	}{
		{"empty", nil, 0},
		{"nothing known", Chain{nil, none}, 0},
		{"first answer", Chain{nil, none, slow, fast}, 100_000 / 8},
		{"order", Chain{fast, slow}, 50_000_000 / 8},
	}
	for _, tt := range tests {
		p, ok := tt.chain.Predict(context.Background(), addr)
		if ok != (tt.want != 0) || p.Throughput != tt.want {
			t.Errorf("%s: %+v, %t; want %v B/s", tt.name, p, ok, tt.want)
		}
	}
}

// TestExceptOwnPrefix: the store's prefix answer for the proxy's own /24
// (the aggregate of all its clients) is hidden; a client's own reports
// and other prefixes pass.
func TestExceptOwnPrefix(t *testing.T) {
	st, err := spand.NewMemoryStore(spand.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := netip.MustParseAddr("10.0.0.1")
	now := time.Now()
	st.Add(context.Background(), []spand.Report{
		{Local: netip.MustParseAddr("10.0.0.7"), Remote: proxyAddr, Class: spand.ClassWeb, Start: now, Duration: 1, Bytes: 20000, Throughput: 20000},
		{Local: netip.MustParseAddr("192.168.1.5"), Remote: netip.MustParseAddr("198.51.100.9"), Class: spand.ClassWeb, Start: now, Duration: 1, Bytes: 1e6, Throughput: 1e6},
	})
	own := func(p netip.Prefix) bool { return p.Contains(proxyAddr) }
	tests := []struct {
		addr   string
		own    func(netip.Prefix) bool
		source string
	}{
		{"10.0.0.7", own, "local"},       // the slow client's own reports
		{"10.0.0.8", own, "none"},        // the proxy's /24: hidden
		{"10.0.0.8", nil, "prefix"},      // without Own, passed
		{"198.51.100.77", own, "prefix"}, // a remote prefix: passed
	}
	for _, tt := range tests {
		p, err := ExceptOwnPrefix{Source: st, Own: tt.own}.Predict(context.Background(), netip.MustParseAddr(tt.addr), spand.ClassWeb)
		if err != nil || p.Source != tt.source {
			t.Errorf("Predict(%s, own %t) = %+v, %v; want source %s", tt.addr, tt.own != nil, p, err, tt.source)
		}
	}
}
