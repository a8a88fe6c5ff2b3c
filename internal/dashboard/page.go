package dashboard

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// DefaultRefresh is a sensible Page.Refresh for a daemon's page: often
// enough to watch measurements arrive, rare enough to cost nothing.
const DefaultRefresh = 10 * time.Second

// Page is everything one dashboard page shows. Sections whose slice is
// empty are left out, except Hosts, which says it has none.
type Page struct {
	// Title names the daemon ("icapd", "spand"); Subtitle says more
	// (addresses, version).
	Title, Subtitle string
	// Refresh reloads the page this often (a meta refresh, no script);
	// zero means never.
	Refresh time.Duration
	// Now is when the figures were read; ages are relative to it. Zero
	// means time.Now().
	Now time.Time

	// Stats are the headline numbers, shown as cards at the top.
	Stats []Stat
	// Hosts are the measured hosts, in the order given.
	Hosts []Host
	// HostsNote is shown under the hosts table (e.g. "50 of 1 200
	// shown", or why the list is unavailable).
	HostsNote string
	// Savings are the bytes saved by adaptation, per content type.
	Savings []Saving
	// Rules are the policy decisions per rule.
	Rules []RuleHits
	// Tables are further sections: breakdowns and counters.
	Tables []Table
	// Links are shown in the footer (e.g. /metrics); Href must be a
	// relative or http(s) URL (html/template rejects others).
	Links []Link
}

// Stat is one headline number: Value is already formatted (use the
// Format functions).
type Stat struct {
	Label, Value, Note string
}

// Host is one measured host (or prefix) and application class.
type Host struct {
	Name   string // address or prefix
	Source string // what the figures are keyed by: host, local, prefix
	Class  string // application class (web, bulk...)
	// Bandwidth is the estimate in bytes per second; BandwidthLow and
	// BandwidthHigh, when not zero, its spread (25th and 75th
	// percentiles).
	Bandwidth, BandwidthLow, BandwidthHigh float64
	RTT                                    time.Duration // zero = not measured
	Loss                                   float64       // fraction of segments lost
	Samples                                int           // live reports behind the estimate
	Age                                    time.Duration // since the newest report
	History                                []Point       // for the chart, any order
}

// Point is one sample of a host's history.
type Point struct {
	Time      time.Time
	Bandwidth float64       // bytes per second
	RTT       time.Duration // zero = not measured
}

// Saving is what adaptation did to one content type.
type Saving struct {
	ContentType       string
	Bodies            int64 // bodies adapted
	BytesIn, BytesOut int64 // original and adapted bytes
}

// RuleHits is how often a policy rule decided, and on what.
type RuleHits struct {
	Rule, Action string
	Hits         uint64 // decisions
	Skipped      uint64 // of which the action was not carried out
}

// Table is a generic section: a title, column names and rows of
// formatted cells. Numeric columns are right-aligned; when Numeric is
// nil, every column after the first is.
type Table struct {
	Title, Note string
	Columns     []string
	Rows        [][]string
	Numeric     []bool // per column
}

// numeric reports whether column i is right-aligned.
func (t *Table) numeric(i int) bool {
	if t.Numeric == nil {
		return i > 0
	}
	return i < len(t.Numeric) && t.Numeric[i]
}

// Link is a footer link.
type Link struct{ Text, Href string }

// view is what the template sees: the page plus derived figures.
type view struct {
	*Page
	RefreshSeconds int
	Generated      string
	Hosts          []hostView
	Savings        []savingView
	SavedTotal     string
	Rules          []ruleView
	Tables         []tableView
}

type tableView struct {
	Table
	Head []cell
	Body [][]cell
}

type cell struct {
	Text    string
	Numeric bool
}

type hostView struct {
	Host
	BandwidthText, SpreadText, RTTText, LossText, AgeText string
	Chart                                                 template.HTML
}

type savingView struct {
	Saving
	In, Out, Saved, Percent string
	Bar                     float64 // percent saved, 0..100, for the bar
}

type ruleView struct {
	RuleHits
	HitsText, SkippedText string
	Bar                   float64 // hits relative to the busiest rule, 0..100
}

func (p *Page) view() *view {
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	v := &view{Page: p, RefreshSeconds: int(p.Refresh.Round(time.Second) / time.Second),
		Generated: now.UTC().Format("2006-01-02 15:04:05 UTC")}
	if p.Refresh > 0 && v.RefreshSeconds < 1 {
		v.RefreshSeconds = 1
	}
	for _, h := range p.Hosts {
		hv := hostView{Host: h, BandwidthText: FormatBitrate(h.Bandwidth), RTTText: FormatRTT(h.RTT),
			AgeText: ago(h.Age), Chart: HistoryChart(h.Name, h.History, now)}
		if h.BandwidthLow > 0 || h.BandwidthHigh > 0 {
			hv.SpreadText = FormatBitrate(h.BandwidthLow) + " – " + FormatBitrate(h.BandwidthHigh)
		}
		if h.Loss > 0 {
			hv.LossText = FormatPercent(h.Loss)
		}
		v.Hosts = append(v.Hosts, hv)
	}
	var in, out int64
	for _, s := range p.Savings {
		sv := savingView{Saving: s, In: FormatBytes(s.BytesIn), Out: FormatBytes(s.BytesOut),
			Saved: FormatBytes(s.BytesIn - s.BytesOut), Percent: "–"}
		if s.BytesIn > 0 {
			f := float64(s.BytesIn-s.BytesOut) / float64(s.BytesIn)
			sv.Percent, sv.Bar = FormatPercent(f), min(max(f*100, 0), 100)
		}
		in, out = in+s.BytesIn, out+s.BytesOut
		v.Savings = append(v.Savings, sv)
	}
	if in > 0 {
		v.SavedTotal = FormatBytes(in-out) + " of " + FormatBytes(in) + " (" + FormatPercent(float64(in-out)/float64(in)) + ")"
	}
	var top uint64
	for _, r := range p.Rules {
		top = max(top, r.Hits)
	}
	for _, r := range p.Rules {
		rv := ruleView{RuleHits: r, HitsText: FormatCount(r.Hits), SkippedText: FormatCount(r.Skipped)}
		if top > 0 {
			rv.Bar = float64(r.Hits) / float64(top) * 100
		}
		v.Rules = append(v.Rules, rv)
	}
	for _, t := range p.Tables {
		tv := tableView{Table: t}
		for i, c := range t.Columns {
			tv.Head = append(tv.Head, cell{c, t.numeric(i)})
		}
		for _, r := range t.Rows {
			row := make([]cell, len(r))
			for i, c := range r {
				row[i] = cell{c, t.numeric(i)}
			}
			tv.Body = append(tv.Body, row)
		}
		v.Tables = append(v.Tables, tv)
	}
	return v
}

// SortSavings orders savings by bytes saved, most first, then by type.
func SortSavings(s []Saving) {
	slices.SortFunc(s, func(a, b Saving) int {
		if c := cmp.Compare(b.BytesIn-b.BytesOut, a.BytesIn-a.BytesOut); c != 0 {
			return c
		}
		return cmp.Compare(a.ContentType, b.ContentType)
	})
}

// Render writes p as a complete HTML document.
func Render(w io.Writer, p *Page) error {
	return pageTemplate.Execute(w, p.view())
}

// BadRequestError is returned by a page builder for a bad query (an
// unknown option); Handler answers it 400 instead of 500.
type BadRequestError struct{ Err error }

func (e *BadRequestError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *BadRequestError) Unwrap() error { return e.Err }

// Handler serves the page that build returns, rendered in full before
// the first byte is sent (so an error is a clean 500, logged to logger
// or slog.Default). The answer is not cached and carries a
// Content-Security-Policy that allows nothing but the page's own inline
// style and images, which is all it uses.
func Handler(build func(*http.Request) (*Page, error), logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := build(r)
		var buf bytes.Buffer
		if err == nil {
			err = Render(&buf, p)
		}
		var bad *BadRequestError
		if errors.As(err, &bad) {
			logger.Warn("dashboard: bad request", "path", r.URL.Path, "query", r.URL.RawQuery, "err", err)
			http.Error(w, fmt.Sprintf("dashboard: %v", err), http.StatusBadRequest)
			return
		}
		if err != nil {
			logger.Error("dashboard: page not rendered", "path", r.URL.Path, "err", err)
			http.Error(w, fmt.Sprintf("dashboard: %v", err), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		w.Write(buf.Bytes())
	})
}

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// Options are the query parameters both daemons' pages take: ?hosts=N
// (how many hosts to list, each with a chart) and ?refresh=S (reload
// every S seconds, 0: never).
type Options struct {
	Hosts   int
	Refresh time.Duration
}

// MaxRefresh is the longest ?refresh= accepted.
const MaxRefresh = time.Hour

// ParseOptions reads ?hosts= (1..maxHosts) and ?refresh= from q over the
// defaults in def; a bad value is a *BadRequestError.
func ParseOptions(q url.Values, def Options, maxHosts int) (Options, error) {
	o := def
	if v := q.Get("hosts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHosts {
			return o, &BadRequestError{fmt.Errorf("hosts %q: want 1..%d", v, maxHosts)}
		}
		o.Hosts = n
	}
	if v := q.Get("refresh"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || time.Duration(n)*time.Second > MaxRefresh {
			return o, &BadRequestError{fmt.Errorf("refresh %q: want 0..%d seconds", v, int(MaxRefresh/time.Second))}
		}
		o.Refresh = time.Duration(n) * time.Second
	}
	return o, nil
}
