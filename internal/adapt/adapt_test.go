package adapt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

const profiles = `
[profiles.keep.image]
max_width = 800
quality = 50
strip = true

[profiles.webp.image]
max_height = 320
format = "webp"
greyscale = true
gif = "first-frame"

[profiles.png.image]
format = "png"
gif = "skip"

[profiles.page.html]
minify = true
placeholders = true
[profiles.page.compression]
types = ["text/css"]
min_bytes = 100
`

func loadProfiles(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("profiles.toml", []byte(profiles))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProfile maps policy profiles to transcode profiles per media type.
func TestProfile(t *testing.T) {
	p := loadProfiles(t)
	tests := []struct {
		profile, mediaType string
		want               transcode.Profile
	}{
		{"keep", "image/jpeg", transcode.Profile{MaxWidth: 800, Quality: 50, StripMetadata: true,
			Formats: []image.Format{image.JPEG}, Animation: image.AnimationKeep}},
		{"keep", "image/png", transcode.Profile{MaxWidth: 800, Quality: 50, StripMetadata: true,
			Formats: []image.Format{image.PNG}, Animation: image.AnimationKeep}},
		{"keep", "text/html", transcode.Profile{}},
		{"webp", "image/gif", transcode.Profile{MaxHeight: 320, Quality: policy.DefaultImageQuality, Greyscale: true,
			Formats: []image.Format{image.WebP, image.GIF}, Animation: image.AnimationFirstFrame}},
		{"png", "image/jpeg", transcode.Profile{Quality: policy.DefaultImageQuality,
			Formats: []image.Format{image.PNG}, Animation: image.AnimationPass}},
		{"page", "text/html", transcode.Profile{Minify: true, Placeholders: true}},
		{"page", "text/css", transcode.Profile{Compress: true, Encodings: []string{"gzip"}}},
		{"page", "image/jpeg", transcode.Profile{}},
	}
	for _, tt := range tests {
		t.Run(tt.profile+" "+tt.mediaType, func(t *testing.T) {
			tt.want.Name = tt.profile
			if got := Profile(p.Profile(tt.profile), tt.mediaType); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMediaMatch(t *testing.T) {
	for _, tt := range []struct {
		pat, t string
		want   bool
	}{
		{"*/*", "text/css", true}, {"*/*", "", false}, {"text/*", "text/css", true},
		{"text/*", "text/", false}, {"text/*", "textile/x", false}, {"text/css", "text/css", true}, {"text/css", "text/html", false},
	} {
		if got := mediaMatch(tt.pat, tt.t); got != tt.want {
			t.Errorf("mediaMatch(%q, %q) = %v", tt.pat, tt.t, got)
		}
	}
}

// TestTranscoder runs decisions of the profiles above on corpus files,
// knowing nothing of the request: the body and content type come back,
// or an error that makes the caller pass the original.
func TestTranscoder(t *testing.T) {
	p := loadProfiles(t)
	photo := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg")
	css, err := os.ReadFile(filepath.Join(testenv.Corpus(t, "html"), "sample_bootstrap.css"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transcoder{}
	decide := func(name string) *policy.Decision {
		return &policy.Decision{Action: policy.Transcode, Rule: "r", Profile: p.Profile(name)}
	}
	ctx := context.Background()

	out, ct, err := tr.Transcode(ctx, decide("keep"), "image/jpeg", bytes.NewReader(photo))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out)
	info, err := image.Probe(b)
	if err != nil || ct != "image/jpeg" || info.Width != 800 || len(b) >= len(photo) {
		t.Errorf("photo: %s %+v (%v), %d bytes from %d", ct, info, err, len(b), len(photo))
	}

	// No Accept-Encoding through Transcode: compression has nothing to offer.
	if _, _, err := tr.Transcode(ctx, decide("page"), "text/css", bytes.NewReader(css)); !errors.Is(err, transcode.ErrPass) {
		t.Errorf("css without Accept-Encoding: %v, want a pass", err)
	}
	if _, _, err := tr.Transcode(ctx, decide("keep"), "image/jpeg", strings.NewReader("not a jpeg")); !errors.Is(err, transcode.ErrPass) {
		t.Errorf("corrupt jpeg: %v, want a pass", err)
	}
	if _, _, err := tr.Transcode(ctx, &policy.Decision{Action: policy.Transcode}, "image/jpeg", bytes.NewReader(photo)); !errors.Is(err, ErrNoProfile) {
		t.Errorf("no profile: %v", err)
	}
	if st := tr.Stats(); st.Adapted != 1 || st.Passed[transcode.ReasonError] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestSpand asks a real spand API server (loopback) and an in-process
// store for predictions.
func TestSpand(t *testing.T) {
	store, err := spand.NewMemoryStore(spand.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&spand.Server{Store: store, Logger: slog.New(slog.DiscardHandler)})
	defer ts.Close()
	client := &spand.Client{BaseURL: ts.URL}
	known, unknown := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.99.0.1")
	ctx := context.Background()
	err = client.Report(ctx, []spand.Report{{
		Local: known, Remote: netip.MustParseAddr("192.0.2.80"), Class: spand.ClassWeb,
		Start: time.Now().Add(-4 * time.Second), Duration: 4, Bytes: 28000, Throughput: 7000, RTTMin: 300, RTTMedian: 310,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]PredictionSource{"client": client, "store": store} {
		t.Run(name, func(t *testing.T) {
			s := &Spand{Source: src}
			got, ok := s.Predict(ctx, known)
			if !ok || got.Throughput != 7000 || got.Reports != 1 || got.RTT != 310*time.Millisecond || got.Age > time.Minute {
				t.Errorf("known client: %+v %v", got, ok)
			}
			if got, ok := s.Predict(ctx, unknown); ok {
				t.Errorf("unknown client: %+v", got)
			}
			if policy.BitRate(got.Throughput*8) != 56_000 {
				t.Errorf("rate %v, want 56kbit", policy.BitRate(got.Throughput*8))
			}
		})
	}

	// A spand that is gone: no prediction, one log line, counted.
	var logBuf bytes.Buffer
	down := &Spand{Source: &spand.Client{BaseURL: "http://127.0.0.1:1"}, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
	for range 3 {
		if _, ok := down.Predict(ctx, known); ok {
			t.Fatal("prediction from a spand that is down")
		}
	}
	if down.Failures() != 3 || strings.Count(logBuf.String(), "spand prediction failed") != 1 {
		t.Errorf("failures %d, log:\n%s", down.Failures(), logBuf.String())
	}
}

// slowSource answers after the context is done.
type slowSource struct{}

func (slowSource) Predict(ctx context.Context, _ netip.Addr, _ spand.Class) (spand.Prediction, error) {
	<-ctx.Done()
	return spand.Prediction{}, ctx.Err()
}

// A spand that does not answer costs at most the timeout.
func TestSpandTimeout(t *testing.T) {
	s := &Spand{Source: slowSource{}, Timeout: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if _, ok := s.Predict(context.Background(), netip.MustParseAddr("10.0.0.1")); ok || s.Failures() != 1 {
		t.Errorf("ok %v failures %d", ok, s.Failures())
	}
}

func TestConvert(t *testing.T) {
	for _, tt := range []struct {
		in spand.Prediction
		ok bool
	}{
		{spand.Prediction{Source: "none"}, false},
		{spand.Prediction{Source: "host", Throughput: 0}, false},
		{spand.Prediction{Source: "prefix", Throughput: 125000, RTT: 42.5, Reports: 3, Age: 1.5}, true},
	} {
		got, ok := Convert(tt.in)
		if ok != tt.ok {
			t.Errorf("%+v: ok %v", tt.in, ok)
		}
		if ok && (got.Throughput != 125000 || got.RTT != 42500*time.Microsecond || got.Reports != 3 || got.Age != 1500*time.Millisecond) {
			t.Errorf("%+v: %+v", tt.in, got)
		}
	}
}
