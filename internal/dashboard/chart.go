package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The history chart's geometry, in CSS pixels: the plot area sits inside
// margins that hold the axis labels (bandwidth on the left, RTT on the
// right, time below).
const (
	chartW    = 276
	chartH    = 80
	chartPadL = 64
	chartPadR = 44
	chartPadT = 8
	chartPadB = 18
)

// Chart colours; the page's legend uses the same.
const (
	colourBandwidth = "#2563eb"
	colourRTT       = "#ea580c"
	colourGrid      = "#e5e7eb"
	colourText      = "#6b7280"
)

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten, so that
// the top of an axis reads well ("2 Mbit/s", not "1.87 Mbit/s").
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}

// HistoryChart draws a host's history as an inline SVG line chart:
// bandwidth (bits per second, filled line, left axis) and RTT
// (milliseconds, dashed line, right axis) against time, the oldest point
// on the left and the newest on the right, labelled by their age at now.
// name only goes into the chart's accessible title, escaped. Points need
// not be sorted; non-finite and negative values are left out. With no
// point it draws an empty frame saying so.
func HistoryChart(name string, points []Point, now time.Time) template.HTML {
	pts := make([]Point, 0, len(points))
	for _, p := range points {
		if p.Bandwidth >= 0 && !math.IsInf(p.Bandwidth, 0) && !math.IsNaN(p.Bandwidth) {
			pts = append(pts, p)
		}
	}
	slices.SortStableFunc(pts, func(a, b Point) int { return a.Time.Compare(b.Time) })

	var b strings.Builder
	title := fmt.Sprintf("History of %s: %d samples", name, len(pts))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, esc(title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	x0, x1 := float64(chartPadL), float64(chartW-chartPadR)
	y0, y1 := float64(chartH-chartPadB), float64(chartPadT) // bottom, top
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="%s"/>`, x0, y1, x1-x0, y0-y1, colourGrid)
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" fill="%s" font-size="11">no history yet</text></svg>`,
			(x0+x1)/2, (y0+y1)/2+4, colourText)
		return template.HTML(b.String())
	}

	maxBW, maxRTT := 0.0, time.Duration(0)
	for _, p := range pts {
		maxBW = max(maxBW, p.Bandwidth*8)
		maxRTT = max(maxRTT, p.RTT)
	}
	topBW := niceCeil(maxBW)
	topRTT := niceCeil(float64(maxRTT) / float64(time.Millisecond))
	// Grid: the middle line; the frame is the top and bottom.
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s"/>`, x0, (y0+y1)/2, x1, (y0+y1)/2, colourGrid)
	label := func(x, y float64, anchor, colour, s string) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s" fill="%s" font-size="10">%s</text>`, x, y, anchor, colour, esc(s))
	}
	label(x0-4, y1+8, "end", colourBandwidth, FormatBitrate(topBW/8))
	label(x0-4, y0, "end", colourBandwidth, "0")
	if maxRTT > 0 {
		label(x1+4, y1+8, "start", colourRTT, sig3(topRTT)+" ms")
		label(x1+4, y0, "start", colourRTT, "0")
	}
	t0, t1 := pts[0].Time, pts[len(pts)-1].Time
	label(x0, float64(chartH-4), "start", colourText, ago(now.Sub(t0)))
	if len(pts) > 1 {
		label(x1, float64(chartH-4), "end", colourText, ago(now.Sub(t1)))
	}

	span := t1.Sub(t0)
	xOf := func(t time.Time) float64 {
		if span <= 0 {
			return (x0 + x1) / 2
		}
		return x0 + (x1-x0)*float64(t.Sub(t0))/float64(span)
	}
	yOf := func(v, top float64) float64 { return y0 - (y0-y1)*min(v/top, 1) }

	// The lines go through the mean of the samples that share a time
	// (reports of several connections ending together), so that they do
	// not zigzag up and down one instant; every sample keeps its dot.
	var line, rtt strings.Builder
	nLine, nRTT := 0, 0
	for i := 0; i < len(pts); {
		j, bw, rs, nr := i, 0.0, 0.0, 0
		for ; j < len(pts) && pts[j].Time.Equal(pts[i].Time); j++ {
			bw += pts[j].Bandwidth
			if pts[j].RTT > 0 {
				rs += float64(pts[j].RTT) / float64(time.Millisecond)
				nr++
			}
		}
		x := xOf(pts[i].Time)
		if nLine > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%.1f,%.1f", x, yOf(bw/float64(j-i)*8, topBW))
		nLine++
		if nr > 0 {
			if nRTT > 0 {
				rtt.WriteByte(' ')
			}
			fmt.Fprintf(&rtt, "%.1f,%.1f", x, yOf(rs/float64(nr), topRTT))
			nRTT++
		}
		i = j
	}
	if nLine > 1 {
		fmt.Fprintf(&b, `<polygon points="%.1f,%.1f %s %.1f,%.1f" fill="%s" fill-opacity="0.15" stroke="none"/>`,
			xOf(t0), y0, line.String(), xOf(t1), y0, colourBandwidth)
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-linejoin="round"/>`, line.String(), colourBandwidth)
	}
	for _, p := range pts {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2" fill="%s"/>`, xOf(p.Time), yOf(p.Bandwidth*8, topBW), colourBandwidth)
	}
	switch {
	case nRTT > 1:
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.2" stroke-dasharray="3 2"/>`, rtt.String(), colourRTT)
	case nRTT == 1:
		xy := strings.Split(rtt.String(), ",")
		fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2" fill="%s"/>`, xy[0], xy[1], colourRTT)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func ago(d time.Duration) string {
	if s := FormatAge(d); s != "now" {
		return s + " ago"
	}
	return "now"
}

// esc escapes s for HTML and XML text and attribute values alike. Bytes
// that are not UTF-8 and characters XML 1.0 forbids (controls other than
// tab and newlines) become U+FFFD, so that the SVG stays well-formed
// whatever a host or rule name holds.
func esc(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return template.HTMLEscapeString(s)
}
