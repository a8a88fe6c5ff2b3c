package icapservice

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/policy"
)

// TestCountersSnapshot counts real decisions through the service and
// reads them back per rule, as icapd's admin page does.
func TestCountersSnapshot(t *testing.T) {
	f := newFixture(t, nil)
	f.svc.Counters = &Counters{}
	if got := f.svc.Counters.Snapshot(); len(got) != 0 {
		t.Errorf("fresh counters: %+v", got)
	}
	for range 3 {
		f.do(t, icap.MethodREQMOD, "http://a.blocked.example/", nil, nil, "")
	}
	f.do(t, icap.MethodREQMOD, "http://plain.example/", nil, nil, "")
	for range 2 {
		f.do(t, icap.MethodRESPMOD, "http://s.example/", http.Header{"Save-Data": {"on"}}, htmlResponse(http.Header{"Cache-Control": {"no-transform"}}), "<p>x</p>")
	}
	want := []RuleDecisions{
		{Rule: "", Action: policy.Pass, Count: 1},
		{Rule: "block-host", Action: policy.Block, Count: 3},
		{Rule: "slow-html", Action: policy.Pass, Count: 2, Skipped: 2},
	}
	if got := f.svc.Counters.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot\n got %+v\nwant %+v", got, want)
	}
}
