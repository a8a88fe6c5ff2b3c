//go:build vips

package image

// DefaultEngine returns the engine of this build: VipsEngine with the vips
// build tag (libvips is several times faster and colour-manages).
func DefaultEngine() Engine { return NewVipsEngine(0) }
