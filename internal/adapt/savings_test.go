package adapt

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
)

// TestSavings transcodes a real photo (held and early-committed) and a
// corrupt one: only the adapted bodies count, per media type, with
// their real sizes.
func TestSavings(t *testing.T) {
	p := loadProfiles(t)
	photo := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg")
	tr := &Transcoder{}
	d := &policy.Decision{Action: policy.Transcode, Rule: "r", Profile: p.Profile("keep")}
	ctx := context.Background()
	resp := &http.Response{Header: http.Header{"Content-Type": {"Image/JPEG; q=1"}}}
	out, _, err := tr.TranscodeResponse(ctx, d, nil, resp, photo)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.TranscodeResponse(ctx, d, nil, resp, []byte("not a jpeg")); err == nil {
		t.Fatal("corrupt jpeg adapted")
	}
	early := tr.Early(d, nil, &http.Response{ContentLength: int64(len(photo)), Header: http.Header{"Content-Type": {"image/jpeg"}}})
	out2, err := early.Transcode(ctx, photo)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Savings()
	want := []TypeSavings{{MediaType: "image/jpeg", Bodies: 2, BytesIn: 2 * int64(len(photo)), BytesOut: int64(len(out) + len(out2))}}
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("savings %+v, want %+v", got, want)
	}
	if got[0].BytesOut >= got[0].BytesIn {
		t.Errorf("nothing saved: %+v", got[0])
	}
}

func TestSavingsBounded(t *testing.T) {
	var s savings
	for i := range MaxSavingsTypes + 10 {
		s.add("image/x-"+strconv.Itoa(i), 10, 5)
	}
	s.add("", 1, 1)
	got := s.snapshot()
	if len(got) != MaxSavingsTypes+1 {
		t.Fatalf("%d types, want %d (the bound plus other)", len(got), MaxSavingsTypes+1)
	}
	var other *TypeSavings
	for i := range got {
		if got[i].MediaType == "other" {
			other = &got[i]
		}
	}
	// The 32 first types have their own row; the rest, and "unknown",
	// count as other.
	if other == nil || other.Bodies != 11 || !strings.HasPrefix(got[0].MediaType, "image/x-") {
		t.Errorf("other %+v, rows %+v", other, got)
	}
}
