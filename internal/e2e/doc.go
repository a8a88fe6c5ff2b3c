// Package e2e runs the whole system on a network of namespaces: an origin
// serving corpus pages and images, a proxy host running Squid + icapd +
// spand (or icapd alone in proxy mode) with spand sniffing the proxy's
// client-facing interface, a slow client behind a 256 kbit/s tbf and a
// fast client with none (internal/testbed's Edge).
//
// The pieces are a test harness: Origin serves the pages, Browser loads a
// page like a browser does (the HTML, then every image it references over
// up to six parallel connections through the proxy) and reports the load
// time, the bytes on the wire and what each object was, and Stack starts
// the proxy host's daemons from binaries built for the test.
//
// TestNegotiationSquid and TestNegotiationProxy are the CI tests: the slow
// client's first page load is measured by spand (no probe, nothing in any
// configuration names the client), its next loads get adapted, decodable
// images, and the fast client's bodies stay byte-identical to the
// origin's. TestNegotiationExperiment (E2E_EXPERIMENT=1; see
// bench/negotiate.sh and the README's "End-to-end experiment") measures
// page load times and bytes with and without adaptation.
package e2e
