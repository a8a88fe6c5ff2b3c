// Package html makes web text lighter for slow clients: it minifies HTML,
// CSS, JavaScript, SVG and JSON (github.com/tdewolff/minify/v2) and, for the
// slowest class of client, rewrites HTML (golang.org/x/net/html tokenizer,
// streaming) so that images become light placeholders linking to the
// original and prefetch/preload hints are dropped.
//
// Both transformations leave their input intact. tdewolff/minify parses in
// place and scribbles over the buffer it is given (v2.24.25: a *bytes.Buffer
// or []byte input is modified), which would corrupt the original that a
// caller falls back to when minification fails; Minify and MinifyReader
// therefore always work on a copy.
//
// Rewrite never breaks a page: every token it does not change is copied
// byte for byte from the input, so unbalanced or invalid markup comes out
// as it came in.
package html
