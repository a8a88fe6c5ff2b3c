package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testbed"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand"
)

// SlowRate is the slow client's bottleneck.
const SlowRate = 256_000 // bit/s

// slowBelow is the default policy's bound of the "slow" class in bytes/s.
const slowBelow = 512_000 / 8

var build testenv.BuildOnce

func TestMain(m *testing.M) {
	code := m.Run()
	build.Remove()
	os.Exit(code)
}

// binaries builds icapd and spand once per test binary (E2E_TAGS, e.g.
// "vips", selects build tags).
func binaries(t testing.TB) Binaries {
	t.Helper()
	dir := build.Dir(t, os.Getenv("E2E_TAGS"), "./cmd/icapd", "./cmd/spand")
	return Binaries{Icapd: filepath.Join(dir, "icapd"), Spand: filepath.Join(dir, "spand")}
}

// env is one test bed with the origin and the two clients.
type env struct {
	edge       *testbed.Edge
	origin     *Origin
	slow, fast *Browser
	policy     string // the repository's policy.toml
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.LookPath(t, "squid", "squid")
	e := testbed.NewEdge(t,
		testbed.EdgeClient{Name: "slow", Rate: SlowRate},
		testbed.EdgeClient{Name: "fast"},
	)
	o := StartOrigin(t, e.Origin, testenv.Corpus(t, "html"), testenv.Corpus(t, "images"), SmallPage, PhotoPage)
	proxy := e.Proxy.Addr.String() + ":" + ProxyPort
	return &env{
		edge: e, origin: o,
		slow:   &Browser{Host: e.Clients[0], Proxy: proxy, Timeout: 10 * time.Minute},
		fast:   &Browser{Host: e.Clients[1], Proxy: proxy, Timeout: time.Minute},
		policy: filepath.Join(testenv.ModuleRoot(t), "policy.toml"),
	}
}

func (v *env) stack(t *testing.T, mode Mode, policy string) *Stack {
	t.Helper()
	return StartStack(t, v.edge, StackConfig{Mode: mode, Bins: binaries(t), Policy: policy, Allow: []string{"10.201.2.0/24"}})
}

func TestNegotiationSquid(t *testing.T) { testNegotiation(t, ModeSquid) }

func TestNegotiationProxy(t *testing.T) { testNegotiation(t, ModeProxy) }

// testNegotiation: the slow client's first page load passes unchanged (it
// is unknown) and is measured by spand; once spand has it as slow, a page
// load gets adapted HTML and smaller images that still decode, within a
// few loads (icapd caches a prediction for spand.DefaultCacheTTL); the
// fast client, before and after, gets the origin's bytes.
func testNegotiation(t *testing.T, mode Mode) {
	v := newEnv(t)
	s := v.stack(t, mode, v.policy)
	ctx := context.Background()
	page := v.origin.PageURL(SmallPage.Name)

	identical := func(who string, l *Load) {
		t.Helper()
		for _, o := range l.Objects() {
			want, ok := v.origin.Digest(o.URL)
			if o.Status == http.StatusNotFound && !ok {
				continue // the blog post's feed icon is not in the corpus
			}
			if o.SHA256 != want || o.Adapted != "" {
				t.Errorf("%s: %s: %d bytes, sha256 %.12s, X-Adapted %q; want the origin's %d bytes, %.12s",
					who, o.URL, o.Bytes, o.SHA256, o.Adapted, v.origin.Size(o.URL), want)
			}
		}
		if len(l.Images) != len(SmallPage.Images)+1 {
			t.Errorf("%s: %d images loaded, want %d", who, len(l.Images), len(SmallPage.Images)+1)
		}
	}

	fast1, err := v.fast.Load(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	identical("fast client, first load", fast1)

	slow1, err := v.slow.Load(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	identical("slow client, first load (not yet measured)", slow1)
	t.Logf("slow client, first load: %v, %d bytes, %d connections", slow1.Duration, slow1.WireBytes, slow1.Conns)

	// spand's tracker runs on capture time and reports a closed
	// connection 5 s (of packets) after its end: on a LAN where nobody
	// else sends, it would wait for the next packet. Another user keeps
	// browsing meanwhile, and gets the origin's bytes every time.
	other := v.fast.Browse(ctx, page, 250*time.Millisecond)
	slowAddr := v.edge.Clients[0].Addr
	p, learn := s.WaitKnown(t, slowAddr, 30*time.Second, func(p spand.Prediction) bool {
		// Until the client's own reports arrive, spand answers from the
		// /24 of the remote side, the proxy's, fed by every client.
		return p.Source == "local" && p.Reports >= 2
	})
	t.Logf("spand knows the slow client %v after its first load: %.0f bit/s (%s, %d reports)", learn, p.Throughput*8, p.Source, p.Reports)
	loads, err := other.Stop()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loads {
		identical("fast client, while spand learns", l)
	}
	if p.Source != "local" || p.Throughput >= slowBelow {
		t.Fatalf("spand predicts %+v for the slow client; want its own (local) measurement below 512 kbit/s (the slow class)", p)
	}

	// icapd may still hold the answer "unknown" it got during the first
	// load for up to spand.DefaultCacheTTL: a user keeps browsing, and
	// within a few loads the pages are adapted.
	var adapted *Load
	for i := 0; i < 3 && adapted == nil; i++ {
		l, err := v.slow.Load(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("slow client, load %d after spand learned: %v, %d bytes, html %q", i+2, l.Duration, l.WireBytes, l.HTML.Adapted)
		if l.HTML.Adapted != "" {
			adapted = l
		}
	}
	if adapted == nil {
		t.Fatalf("the slow client's pages were not adapted within 3 loads after spand measured it at %.0f bit/s", p.Throughput*8)
	}
	if adapted.HTML.Bytes >= slow1.HTML.Bytes {
		t.Errorf("adapted HTML is %d bytes, the original %d", adapted.HTML.Bytes, slow1.HTML.Bytes)
	}
	smaller := 0
	for i, o := range adapted.Images {
		if o.Status == http.StatusNotFound {
			continue
		}
		orig := v.origin.Size(o.URL)
		if o.DecodeErr != nil {
			t.Errorf("adapted %s does not decode: %v", o.URL, o.DecodeErr)
		}
		if o.Bytes > orig {
			t.Errorf("adapted %s is %d bytes, larger than the original %d", o.URL, o.Bytes, orig)
		}
		// Committed early behind Squid (over 48 KiB), an adapted image
		// has no X-Adapted: its header went out before the transcode.
		if o.Bytes < orig {
			smaller++
		}
		t.Logf("image %d %s: %s %dx%d, %d bytes (original %d), X-Adapted %q", i, o.URL, o.Format, o.Width, o.Height, o.Bytes, orig, o.Adapted)
	}
	if smaller != len(SmallPage.Images) {
		t.Errorf("%d of %d images adapted and smaller", smaller, len(SmallPage.Images))
	}
	if adapted.WireBytes*2 > slow1.WireBytes {
		t.Errorf("adapted load read %d bytes, the original %d: want at most half", adapted.WireBytes, slow1.WireBytes)
	}

	fast2, err := v.fast.Load(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	identical("fast client, after the slow one was adapted", fast2)
	fp, err := s.Predict(ctx, v.edge.Clients[1].Addr)
	t.Logf("spand on the fast client: %.0f bit/s (%s, %d reports), err %v", fp.Throughput*8, fp.Source, fp.Reports, err)
}
