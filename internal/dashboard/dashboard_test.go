package dashboard

import (
	"encoding/xml"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)

func TestFormatBitrate(t *testing.T) {
	for _, tt := range []struct {
		bytesPerSec float64
		want        string
	}{
		{0, "0 bit/s"},
		{64, "512 bit/s"},
		{32000, "256 kbit/s"},
		{192500, "1.54 Mbit/s"},
		{1.25e6, "10.0 Mbit/s"},
		{124995, "1.00 Mbit/s"}, // 999.96 kbit/s rounds up into the next unit
		{1.25e9, "10.0 Gbit/s"},
		{-1, "–"},
	} {
		if got := FormatBitrate(tt.bytesPerSec); got != tt.want {
			t.Errorf("FormatBitrate(%g) = %q, want %q", tt.bytesPerSec, got, tt.want)
		}
	}
}

func TestFormatOthers(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{FormatBytes(900), "900 B"},
		{FormatBytes(1500), "1.50 kB"},
		{FormatBytes(12_345_678), "12.3 MB"},
		{FormatBytes(-2000), "-2.00 kB"},
		{FormatRTT(0), "–"},
		{FormatRTT(420 * time.Microsecond), "0.42 ms"},
		{FormatRTT(12345 * time.Microsecond), "12.3 ms"},
		{FormatRTT(1200 * time.Millisecond), "1.20 s"},
		{FormatAge(300 * time.Millisecond), "now"},
		{FormatAge(42 * time.Second), "42 s"},
		{FormatAge(5*time.Minute + 30*time.Second), "5 min"},
		{FormatAge(210 * time.Minute), "3.5 h"},
		{FormatAge(72 * time.Hour), "3 d"},
		{FormatCount(7), "7"},
		{FormatCount(1234567), "1\u202f234\u202f567"},
		{FormatPercent(0.123), "12.3\u202f%"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{
		{0, 1}, {1, 1}, {1.1, 2}, {1.87e6, 2e6}, {2.2, 2.5}, {3, 5}, {7, 10}, {256000, 500000},
	} {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%g) = %g, want %g", tt.in, got, tt.want)
		}
	}
}

const evil = `<script>alert("x")</script>&'"`

func samplePage() *Page {
	var hist []Point
	for i := range 12 {
		hist = append(hist, Point{Time: t0.Add(time.Duration(i) * time.Minute), Bandwidth: float64(20000 + 5000*(i%4)), RTT: time.Duration(40+i) * time.Millisecond})
	}
	return &Page{
		Title: "icapd", Subtitle: "admin 127.0.0.1:9090", Refresh: 10 * time.Second, Now: t0.Add(15 * time.Minute),
		Stats: []Stat{{Label: "Hosts", Value: "3"}, {Label: "Saved", Value: "1.20 MB", Note: "by adaptation"}},
		Hosts: []Host{
			{Name: "192.0.2.10", Source: "local", Class: "web", Bandwidth: 32000, BandwidthLow: 30000, BandwidthHigh: 35000,
				RTT: 48 * time.Millisecond, Loss: 0.01, Samples: 12, Age: 3 * time.Minute, History: hist},
			{Name: "192.0.2.11", Source: "host", Class: "web", Bandwidth: 1.25e6, Samples: 1, Age: 10 * time.Second,
				History: []Point{{Time: t0, Bandwidth: 1.25e6, RTT: 2 * time.Millisecond}}},
			{Name: evil, Source: evil, Class: "web", Bandwidth: 1000},
		},
		Savings: []Saving{{ContentType: "image/jpeg", Bodies: 4, BytesIn: 400000, BytesOut: 100000}, {ContentType: evil, Bodies: 1, BytesIn: 10, BytesOut: 9}},
		Rules:   []RuleHits{{Rule: "slow-images", Action: "transcode", Hits: 40, Skipped: 2}, {Rule: evil, Action: "pass", Hits: 3}, {Rule: "", Action: "pass", Hits: 100}},
		Tables:  []Table{{Title: "Counters", Columns: []string{"Counter", "Value"}, Rows: [][]string{{evil, "1"}}}},
		Links:   []Link{{Text: "metrics", Href: "/metrics"}},
	}
}

func render(t *testing.T, p *Page) string {
	t.Helper()
	var b strings.Builder
	if err := Render(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var svgRE = regexp.MustCompile(`(?s)<svg .*?</svg>`)

// wellFormed parses s as XML to its end.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
	}
}

func TestRenderEscapes(t *testing.T) {
	out := render(t, samplePage())
	if strings.Contains(out, "<script") || strings.Contains(out, `alert("x")`) {
		t.Fatalf("unescaped input in the page")
	}
	if n := strings.Count(out, "&lt;script&gt;"); n < 5 { // host, key, content type, rule, table cell, chart title
		t.Errorf("escaped input appears %d times, want at least 5", n)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="10">`, `<link rel="icon" href="data:,">`,
		"192.0.2.10", "256 kbit/s", "10.0 Mbit/s", "48.0 ms", "3 min ago", "1.00\u202f%",
		"image/jpeg", "300 kB", "75.0\u202f%", "slow-images", "(no rule matched)", `href="/metrics"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(out, "<script") || strings.Contains(out, "http://") && !strings.Contains(out, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("page loads something external")
	}
	svgs := svgRE.FindAllString(out, -1)
	if len(svgs) != 3 {
		t.Fatalf("%d charts, want one per host (3)", len(svgs))
	}
	for _, s := range svgs {
		wellFormed(t, s)
	}
}

func TestRenderEmpty(t *testing.T) {
	out := render(t, &Page{Title: "spand"})
	if !strings.Contains(out, "No host measured yet") {
		t.Error("empty page does not say there are no hosts")
	}
	for _, absent := range []string{"<svg", `id="savings"`, `id="rules"`, "http-equiv"} {
		if strings.Contains(out, absent) {
			t.Errorf("empty page has %q", absent)
		}
	}
}

func TestChartWellFormedAndScaled(t *testing.T) {
	now := t0.Add(time.Hour)
	for _, tt := range []struct {
		name   string
		points []Point
		want   []string
	}{
		{"none", nil, []string{"no history yet"}},
		{"one", []Point{{Time: t0, Bandwidth: 125000}}, []string{"1.00 Mbit/s", "1 h ago", "<circle"}},
		{"many", []Point{{Time: t0.Add(50 * time.Minute), Bandwidth: 2e5, RTT: 30 * time.Millisecond}, {Time: t0, Bandwidth: 1e5, RTT: 80 * time.Millisecond}},
			[]string{"2.00 Mbit/s", "100 ms", "1 h ago", "10 min ago", "<polyline", "stroke-dasharray"}},
		{"bad values", []Point{{Time: t0, Bandwidth: -5}, {Time: t0, Bandwidth: 1000}}, []string{"10.0 kbit/s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := string(HistoryChart(evil, tt.points, now))
			wellFormed(t, s)
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("chart lacks %q:\n%s", w, s)
				}
			}
			if strings.Contains(s, "<script") {
				t.Error("name not escaped")
			}
		})
	}
}

func TestChartPointsInsidePlot(t *testing.T) {
	pts := []Point{{Time: t0, Bandwidth: 1}, {Time: t0.Add(time.Minute), Bandwidth: 3e6}, {Time: t0.Add(2 * time.Minute), Bandwidth: 0}}
	s := string(HistoryChart("h", pts, t0.Add(3*time.Minute)))
	var svg struct {
		Circles []struct {
			CX float64 `xml:"cx,attr"`
			CY float64 `xml:"cy,attr"`
		} `xml:"circle"`
	}
	if err := xml.Unmarshal([]byte(s), &svg); err != nil {
		t.Fatal(err)
	}
	if len(svg.Circles) != 3 {
		t.Fatalf("%d points drawn, want 3", len(svg.Circles))
	}
	for i, c := range svg.Circles {
		if c.CX < chartPadL || c.CX > chartW-chartPadR || c.CY < chartPadT || c.CY > chartH-chartPadB {
			t.Errorf("point %d at (%g,%g) outside the plot", i, c.CX, c.CY)
		}
	}
	if svg.Circles[0].CX >= svg.Circles[1].CX || svg.Circles[1].CY >= svg.Circles[0].CY {
		t.Errorf("points not placed by time and value: %+v", svg.Circles)
	}
}

func TestHandler(t *testing.T) {
	h := Handler(func(r *http.Request) (*Page, error) {
		if r.URL.Query().Get("fail") != "" {
			return nil, errors.New("store down")
		}
		return samplePage(), nil
	}, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") ||
		!strings.Contains(rec.Body.String(), "192.0.2.10") {
		t.Errorf("GET /: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?fail=1", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "store down") {
		t.Errorf("failing page: %d %q", rec.Code, rec.Body.String())
	}
}

func TestChartIsTrustedHTML(t *testing.T) {
	// The chart is inserted as template.HTML: make sure html/template does
	// not escape it into text.
	var b strings.Builder
	template.Must(template.New("").Parse(`{{.}}`)).Execute(&b, HistoryChart("h", nil, t0))
	if !strings.HasPrefix(b.String(), "<svg") {
		t.Errorf("chart escaped: %.40s", b.String())
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP spand_keys Keys held per table.
# TYPE spand_keys gauge
spand_keys{table="host"} 3
spand_keys{table="local"} 1
# HELP spand_capture_packets_read_total Packets read.
spand_capture_packets_read_total 1234567
weird line
spand_ratio 0.25
`
	ms := ParseMetrics(text)
	if len(ms) != 4 {
		t.Fatalf("%d metrics, want 4: %+v", len(ms), ms)
	}
	if v, ok := Find(ms, "spand_keys", `table="local"`); !ok || v != 1 {
		t.Errorf("spand_keys{local} = %v %v", v, ok)
	}
	if ms[0].Help != "Keys held per table." || ms[3].Help != "" {
		t.Errorf("help: %+v", ms)
	}
	tab := MetricsTable("Collector", ms, "spand_capture_", "spand_ratio")
	if len(tab.Rows) != 2 || tab.Rows[0][2] != "1\u202f234\u202f567" || tab.Rows[1][2] != "0.25" {
		t.Errorf("table rows %q", tab.Rows)
	}
	out := render(t, &Page{Title: "x", Tables: []Table{tab}})
	if !strings.Contains(out, `<td>Packets read.</td><td>spand_capture_packets_read_total</td><td class="num">1`) {
		t.Errorf("table not rendered with its alignment")
	}
}

// FuzzRender renders pages with arbitrary names and figures: the charts
// stay well-formed XML and no input reaches the page unescaped.
func FuzzRender(f *testing.F) {
	f.Add("10.0.0.1", "web", "image/jpeg", "slow-images", 32000.0, int64(48e6), int64(60))
	f.Add(evil, evil, evil, evil, -1.0, int64(-5), int64(0))
	f.Add("]]><x/>", "\x00\xff", "a&b", "\"'", 1e300, int64(1<<62), int64(-3600))
	f.Fuzz(func(t *testing.T, host, class, ctype, rule string, bw float64, rttNs, offsetS int64) {
		// Each input carries a tag that must never appear unescaped.
		host, class, ctype, rule = "<zzh>"+host, "<zzc>"+class, "<zzt>"+ctype, "<zzr>"+rule
		hist := []Point{
			{Time: t0.Add(time.Duration(offsetS) * time.Second), Bandwidth: bw, RTT: time.Duration(rttNs)},
			{Time: t0, Bandwidth: bw / 2, RTT: time.Duration(rttNs / 2)},
		}
		p := &Page{Title: host, Now: t0, Hosts: []Host{{Name: host, Source: class, Class: class, Bandwidth: bw, RTT: time.Duration(rttNs), History: hist}},
			Savings: []Saving{{ContentType: ctype, BytesIn: 10, BytesOut: 5}}, Rules: []RuleHits{{Rule: rule, Action: class, Hits: 1}}}
		out := render(t, p)
		for _, s := range svgRE.FindAllString(out, -1) {
			wellFormed(t, s)
		}
		for _, tag := range []string{"<zzh", "<zzc", "<zzt", "<zzr"} {
			if strings.Contains(out, tag) {
				t.Fatalf("%s reached the page unescaped", tag)
			}
		}
	})
}

// TestChartOddNames is the regression test of FuzzRender's finds: a name
// that is not UTF-8, or holds characters XML forbids, keeps the chart
// well-formed.
func TestChartOddNames(t *testing.T) {
	for _, name := range []string{"\xe9", "a\x00b", "\x1b[31m", "\uFFFE"} {
		wellFormed(t, string(HistoryChart(name, []Point{{Time: t0, Bandwidth: 1}}, t0)))
	}
}

// BenchmarkRender renders a full page: 100 hosts (the most a page lists)
// with 32 samples each (spand's default ring), savings and rules.
func BenchmarkRender(b *testing.B) {
	p := samplePage()
	p.Hosts = p.Hosts[:0]
	for i := range 100 {
		h := Host{Name: "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256), Source: "local", Class: "web",
			Bandwidth: float64(1000 * (i + 1)), RTT: time.Duration(i+1) * time.Millisecond, Samples: 32, Age: time.Minute}
		for j := range 32 {
			h.History = append(h.History, Point{Time: t0.Add(time.Duration(j) * time.Minute), Bandwidth: float64(1000 * (i + j + 1)), RTT: time.Duration(j+1) * time.Millisecond})
		}
		p.Hosts = append(p.Hosts, h)
	}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		var sb strings.Builder
		if err := Render(&sb, p); err != nil {
			b.Fatal(err)
		}
		n = sb.Len()
	}
	b.ReportMetric(float64(n), "bytes/page")
}

// TestChartSameTime: samples that end at the same instant each get a dot,
// and the line goes through their mean.
func TestChartSameTime(t *testing.T) {
	pts := []Point{{Time: t0, Bandwidth: 1000}, {Time: t0, Bandwidth: 3000}, {Time: t0.Add(time.Minute), Bandwidth: 2000}}
	s := string(HistoryChart("h", pts, t0.Add(time.Minute)))
	var svg struct {
		Circles  []struct{} `xml:"circle"`
		Polyline struct {
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
	}
	if err := xml.Unmarshal([]byte(s), &svg); err != nil {
		t.Fatal(err)
	}
	// Top of the axis is niceCeil(24 kbit/s) = 25 kbit/s; the mean at t0
	// and the last point are both 16 kbit/s, so the line is flat.
	ys := regexp.MustCompile(`,([0-9.]+)`).FindAllStringSubmatch(svg.Polyline.Points, -1)
	if len(svg.Circles) != 3 || len(ys) != 2 || ys[0][1] != ys[1][1] {
		t.Errorf("%d dots, line %q:\n%s", len(svg.Circles), svg.Polyline.Points, s)
	}
}
