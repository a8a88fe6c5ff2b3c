// Package transcode adapts an HTTP response body to a slow client, in the
// tradition of TACC/TranSend distillation and Google Flywheel: images are
// resized and recompressed (package transcode/image, pure Go or libvips),
// HTML, CSS, JS, SVG and JSON are minified and, for the slowest clients,
// HTML images become placeholders (transcode/html), and text is
// re-encoded with the best coding the client accepts (transcode/compress).
//
// Transcode is a pure function of (body, response header, request Accept
// headers, Profile, Limits). It returns the new body with the header to
// send (Content-Type, Content-Length, Content-Encoding, a strong ETag
// derived from the original's and the profile, Vary, and X-Adapted saying
// what was done and the original size), or a *PassError saying why the
// original must be sent unchanged:
//
//   - the response or the request says Cache-Control: no-transform
//     (RFC 9111 5.2.2.6 and 5.2.1.6);
//   - the body is larger than Limits.MaxInputBytes (the bytes already read
//     are handed back with the unread rest, so nothing is lost);
//   - the image has more pixels than Limits.MaxPixels (decided from the
//     header alone: a decompression bomb costs nothing);
//   - an engine refuses the input, fails, or produces nothing smaller than
//     the original (an output is never larger than its input);
//   - the work exceeds Limits.Timeout, including the wait for one of the
//     Limits.MaxConcurrent slots that bound CPU and memory;
//   - a compressed origin body decodes past its size or ratio limit.
//
// On a pass the Output still carries the original body and header, so the
// caller can always send out.Reader() with out.Header.
package transcode
