// Package filters holds the request and response filters the policy
// names: host and URL block lists (filters/blocklist), header rules
// (filters/headers), URL rewriting (filters/rewrite) and the block page
// (filters/blockpage); filters/icapservice serves the policy as ICAP
// services. The package itself holds what they share: Glob and the
// Validator and Closer interfaces.
//
// Each filter is a small package with one job, in the layout of CoreDNS
// plug-ins: the filter's type, its README.md listing every key with its
// default and an example, and a setup table test. Every filter implements
// [Validator], and filters that hold resources also implement [Closer];
// each package ends with interface guards so a missing method is a build
// error, as in Caddy's modules.
//
// Filters import only the standard library and know nothing about ICAP,
// except icapservice, the adapter (dependencies point cmd → adaptation →
// icap).
package filters
