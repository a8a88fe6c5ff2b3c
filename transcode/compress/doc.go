// Package compress encodes and decodes HTTP content codings (RFC 9110
// section 8.4.1): brotli ("br", RFC 7932), gzip (RFC 1952) and zstd
// (RFC 8878), negotiated from a request's Accept-Encoding.
//
// Decoding is bomb-safe: NewReader stops with a *BombError once the decoded
// stream exceeds an absolute size (Limits.MaxDecodedBytes) or a ratio to the
// compressed bytes read so far (Limits.MaxRatio, checked past 1 MB decoded,
// and ten times it past 64 KB, which stops extreme brotli and zstd bombs
// sooner). Callers that must "pass the original" on failure keep the
// compressed bytes themselves; this package never holds more than the
// codec's window.
package compress
