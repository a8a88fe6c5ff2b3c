// Package image recompresses and resizes images for slow clients behind one
// Engine interface, with two implementations:
//
//   - GoEngine, pure Go (image/jpeg, image/png, image/gif,
//     golang.org/x/image/webp for decoding; a box pre-shrink followed by
//     golang.org/x/image/draw CatmullRom for resizing; JPEG and PNG output).
//     It needs no C library and is the default build. It applies EXIF
//     orientation but does no colour management: CMYK JPEGs and animations
//     it cannot keep are refused (ErrUnsupported) so the caller passes the
//     original, and ICC-tagged RGB images are treated as sRGB.
//   - VipsEngine (build tag vips), libvips through
//     github.com/davidbyttow/govips/v2: shrink-on-load thumbnails, EXIF
//     orientation, ICC profiles converted to sRGB, WebP output, animated GIF
//     kept as animated WebP or GIF.
//
// Probe reads only the header (image.DecodeConfig plus a few bytes of EXIF,
// IHDR or GIF blocks) so that callers can refuse a decompression bomb before
// any pixel is decoded.
//
// No engine ever returns an output that is not smaller than its input: it
// tries the acceptable formats in order and returns ErrLarger when none
// wins.
package image
