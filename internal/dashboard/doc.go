// Package dashboard renders the web pages of icapd (its admin page) and
// spand (its performance server): the hosts measured, with bandwidth,
// RTT and a small history chart each, bytes saved by adaptation per
// content type, policy rule hits, headline numbers and counter tables.
//
// A daemon fills a Page from what it knows and serves it with Handler;
// Render does the work. The page is one self-contained HTML document:
// inline CSS, charts drawn on the server as inline SVG, no JavaScript, no
// external asset (not even a favicon request), so it works offline and
// behind the strictest Content-Security-Policy, which Handler sends.
// Every string from the outside (host names, rule names, content types,
// metric labels) is escaped by html/template or, inside the charts, by
// the chart code.
//
// It depends on the standard library only, so that any package of the
// module may use it without a cycle (spand imports it; it imports
// nothing of the module).
package dashboard
