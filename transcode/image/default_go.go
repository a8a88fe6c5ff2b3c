//go:build !vips

package image

// DefaultEngine returns the engine of this build: GoEngine without the
// vips build tag.
func DefaultEngine() Engine { return GoEngine{} }
