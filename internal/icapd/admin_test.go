package icapd

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/internal/dashboard/browsertest"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
)

// adaptSome sends the corpus photo through /respmod for the slow client
// (adapted by rule slow-tiny) and the fast one (passed), so that the
// admin page has savings and rule hits to show; it returns the photo's
// size.
func adaptSome(t *testing.T, d *Daemon) int {
	t.Helper()
	photo := testenv.ReadCorpus(t, "images", "bimg__northern_cardinal_bird.jpg")
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	for _, c := range []struct {
		ip     netip.Addr
		status int
	}{{slowClient, 200}, {fastClient, 204}} {
		req := newRespmod(t, icapURL(d, RespmodPath), photo, 1024, true, false)
		req.Response.Header.Set("Content-Type", "image/jpeg")
		req.Header.Set("X-Client-IP", c.ip.String())
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("client %s: ICAP %d, want %d", c.ip, resp.StatusCode, c.status)
		}
	}
	return len(photo)
}

// TestAdminPage: icapd with the pipeline and a real spand (over HTTP)
// shows the clients spand measured, with a chart each, the bytes the
// transcode saved on image/jpeg, and the rules that decided; /metrics
// has the savings counters.
func TestAdminPage(t *testing.T) {
	d, pl, _ := startPipeline(t, repoPolicy(t), 8<<20)
	pl.Service.EarlyCommitBytes = 8 << 20 // icap.Client sends the whole body: hold it
	size := adaptSome(t, d)
	admin := "http://" + d.AdminAddr()

	code, page := httpGet(t, admin+"/?refresh=0")
	if code != 200 {
		t.Fatalf("GET /: %d\n%s", code, page)
	}
	for _, want := range []string{slowClient.String(), fastClient.String(), "56.0 kbit/s", "20.0 Mbit/s", "320 ms",
		"image/jpeg", "slow-tiny", "fast-clients-pass", pl.Holder.Version(), "ICAP transactions"} {
		if !strings.Contains(page, want) {
			t.Errorf("admin page lacks %q", want)
		}
	}
	// Two clients, each as local host; the remote host and its prefix.
	if n := strings.Count(page, "<svg"); n != 4 {
		t.Errorf("%d charts, want 4 (one per key spand knows)", n)
	}
	if strings.Contains(page, "http-equiv") {
		t.Error("?refresh=0 still refreshes")
	}
	if code, _ := httpGet(t, admin+"/?hosts=1000"); code != 400 {
		t.Errorf("GET /?hosts=1000: %d, want 400", code)
	}

	sv := pl.Transcoder.Savings()
	if len(sv) != 1 || sv[0].MediaType != "image/jpeg" || sv[0].Bodies != 1 || sv[0].BytesIn != int64(size) || sv[0].BytesOut >= sv[0].BytesIn {
		t.Fatalf("savings %+v", sv)
	}
	_, metrics := httpGet(t, admin+"/metrics")
	for _, want := range []string{
		`icapd_adapt_bodies_total{content_type="image/jpeg"} 1`,
		`icapd_adapt_bytes_in_total{content_type="image/jpeg"} ` + strconv.Itoa(size),
		`icapd_adapt_bytes_out_total{content_type="image/jpeg"} ` + strconv.FormatInt(sv[0].BytesOut, 10),
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n := strings.Count(metrics, "# TYPE icapd_adapt_bytes_in_total"); n != 1 {
		t.Errorf("savings written %d times on /metrics", n)
	}
}

// TestAdminPageWithoutPipeline: the bare daemon's page says there is no
// pipeline and still shows its own counters.
func TestAdminPageWithoutPipeline(t *testing.T) {
	d, _ := startDaemon(t, Config{})
	code, page := httpGet(t, "http://"+d.AdminAddr()+"/")
	if code != 200 || !strings.Contains(page, "pipeline is not installed") || !strings.Contains(page, "ICAP and adaptation counters") ||
		!strings.Contains(page, `<meta http-equiv="refresh" content="10">`) {
		t.Errorf("GET /: %d\n%s", code, page)
	}
	if code, _ := httpGet(t, "http://"+d.AdminAddr()+"/nothing"); code != 404 {
		t.Errorf("GET /nothing: %d, want 404", code)
	}
}

// TestPipelineHostsInProcessStore: with the in-process store as the
// source (no spand daemon), Hosts lists its entries and History reads
// its samples; with no source at all both say so.
func TestPipelineHostsInProcessStore(t *testing.T) {
	store, err := spand.NewMemoryStore(spand.Config{}, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var reports []spand.Report
	for i := range 3 {
		reports = append(reports, spand.Report{Local: netip.MustParseAddr("10.7.0.1"), Remote: netip.MustParseAddr("192.0.2.7"), Class: spand.ClassWeb,
			Start: now.Add(-time.Duration(10*(3-i)) * time.Second), Duration: 2, Bytes: 20000, Throughput: 10000 * float64(i+1), RTTMedian: 80})
	}
	if err := store.Add(context.Background(), reports); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	pl, err := NewPipeline(PipelineConfig{PolicyFile: repoPolicy(t), Predictor: &adapt.Spand{Source: store}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	ctx := context.Background()
	hosts, err := pl.Hosts(ctx, 10)
	if err != nil || len(hosts) != 3 {
		t.Fatalf("Hosts: %d entries, %v", len(hosts), err)
	}
	k, err := spand.KeyOf(&hosts[0])
	if err != nil {
		t.Fatal(err)
	}
	h, err := pl.History(ctx, []spand.Key{k})
	if err != nil || len(h[k]) != 3 || h[k][0].Throughput != 10000 || h[k][2].Throughput != 30000 {
		t.Errorf("History(%s) = %+v, %v", k, h, err)
	}

	// The store behind a chain of predictors and a wrapper, as proxy mode
	// builds it (the congestion manager first, then spand, hiding some
	// answers): still found.
	chained, err := NewPipeline(PipelineConfig{PolicyFile: repoPolicy(t),
		Predictor: testChain{noPrediction{}, &adapt.Spand{Source: testWrapper{Source: store}}}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer chained.Close()
	if hosts, err := chained.Hosts(ctx, 10); err != nil || len(hosts) != 3 {
		t.Errorf("chained Hosts: %d entries, %v", len(hosts), err)
	}

	none, err := NewPipeline(PipelineConfig{PolicyFile: repoPolicy(t), Predictor: testChain{noPrediction{}}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer none.Close()
	if _, err := none.Hosts(ctx, 10); err != ErrNoMeasurements {
		t.Errorf("no source: Hosts error %v", err)
	}
	if _, err := none.History(ctx, []spand.Key{k}); err != ErrNoMeasurements {
		t.Errorf("no source: History error %v", err)
	}
}

// testChain asks its predictors in turn, like proxy mode's chain.
type testChain []policy.Predictor

func (c testChain) Predict(ctx context.Context, a netip.Addr) (policy.Prediction, bool) {
	for _, p := range c {
		if pr, ok := p.Predict(ctx, a); ok {
			return pr, true
		}
	}
	return policy.Prediction{}, false
}

// noPrediction never answers, like a congestion manager without a flow.
type noPrediction struct{}

func (noPrediction) Predict(context.Context, netip.Addr) (policy.Prediction, bool) {
	return policy.Prediction{}, false
}

// testWrapper refines a source it keeps in its Source field.
type testWrapper struct{ Source adapt.PredictionSource }

func (w testWrapper) Predict(ctx context.Context, a netip.Addr, c spand.Class) (spand.Prediction, error) {
	return w.Source.Predict(ctx, a, c)
}

// TestAdminPageInChromium is the end-to-end test of the admin page: icapd
// on loopback with the pipeline, a real spand holding reports for two
// clients, real transcodes; the page loaded in headless Chromium shows
// both clients, the savings and the rules, with no console error. The
// screenshot is kept under $TEST_ARTIFACTS.
func TestAdminPageInChromium(t *testing.T) {
	browsertest.Chromium(t)
	d, pl, _ := startPipeline(t, repoPolicy(t), 8<<20)
	pl.Service.EarlyCommitBytes = 8 << 20
	adaptSome(t, d)
	browsertest.CheckPage(t, "http://"+d.AdminAddr()+"/?refresh=0", browsertest.Expect{
		Contains:   []string{slowClient.String(), fastClient.String(), "56.0 kbit/s", "image/jpeg", "slow-tiny", "fast-clients-pass"},
		Charts:     4,
		Screenshot: "icapd-admin.png",
	})
}
