package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/dashboard"
)

// A daemon builds a Page from what it knows on every request and serves
// it with Handler.
func ExampleHandler() {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	h := dashboard.Handler(func(*http.Request) (*dashboard.Page, error) {
		return &dashboard.Page{
			Title: "spand", Now: now, Refresh: dashboard.DefaultRefresh,
			Hosts: []dashboard.Host{{
				Name: "10.0.0.7", Source: "local", Class: "web",
				Bandwidth: 32000, RTT: 48 * time.Millisecond, Samples: 2, Age: time.Minute,
				History: []dashboard.Point{
					{Time: now.Add(-5 * time.Minute), Bandwidth: 30000, RTT: 50 * time.Millisecond},
					{Time: now.Add(-time.Minute), Bandwidth: 34000, RTT: 46 * time.Millisecond},
				},
			}},
		}, nil
	}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	page := rec.Body.String()
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(strings.Contains(page, "256 kbit/s"), strings.Contains(page, "48.0 ms"), strings.Count(page, "<svg"))
	// Output:
	// 200 text/html; charset=utf-8
	// true true 1
}

func ExampleFormatBitrate() {
	fmt.Println(dashboard.FormatBitrate(7000))  // 56 kbit/s modem
	fmt.Println(dashboard.FormatBitrate(2.5e6)) // 20 Mbit/s
	fmt.Println(dashboard.FormatRTT(320 * time.Millisecond))
	// Output:
	// 56.0 kbit/s
	// 20.0 Mbit/s
	// 320 ms
}
