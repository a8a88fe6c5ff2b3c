package transcode

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeadapt/edgeadapt/transcode/compress"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// image adapts an image body: probe the header, refuse bombs, run the
// engine on the formats the client accepts.
func (t *Transcoder) image(ctx context.Context, body []byte, in Input, p Profile) (*result, *PassError) {
	if ce := compress.Normalize(in.Header.Get("Content-Encoding")); ce != compress.Identity {
		return nil, pass(ReasonNotApplicable, fmt.Errorf("image with Content-Encoding %q", ce))
	}
	info, err := image.Probe(body)
	if err != nil {
		return nil, pass(ReasonError, err)
	}
	if px := info.Pixels(); px > t.Limits.maxPixels() {
		return nil, pass(ReasonTooManyPixels, fmt.Errorf("%dx%d×%d frames = %d pixels, limit %d",
			info.Width, info.Height, info.Frames, px, t.Limits.maxPixels()))
	}
	formats := p.Formats
	if len(formats) == 0 {
		formats = DefaultFormats
	}
	var vary []string
	var allowed []image.Format
	for _, f := range formats {
		if f == image.WebP {
			vary = []string{"Accept"}
			if !accepts(in.Accept, "image/webp") {
				continue
			}
		}
		allowed = append(allowed, f)
	}
	opts := image.Options{
		MaxWidth: p.MaxWidth, MaxHeight: p.MaxHeight, Quality: p.Quality, Formats: allowed,
		Greyscale: p.Greyscale, StripMetadata: p.StripMetadata, Animation: p.Animation,
	}
	res, err := t.Engine.Transcode(ctx, body, info, opts)
	switch {
	case err == nil:
	case errors.Is(err, image.ErrLarger):
		return nil, pass(ReasonLarger, err)
	case errors.Is(err, image.ErrUnsupported):
		return nil, pass(ReasonRefused, err)
	case ctx.Err() != nil:
		return nil, pass(ReasonTimeout, err)
	default:
		return nil, pass(ReasonError, err)
	}
	desc := fmt.Sprintf("%s q=%d %dw", res.Format.MIME(), opts.Quality, res.Width)
	if opts.Quality == 0 {
		desc = fmt.Sprintf("%s q=%d %dw", res.Format.MIME(), image.DefaultQuality, res.Width)
	}
	if res.Frames > 1 {
		desc += fmt.Sprintf(" %dframes", res.Frames)
	}
	if p.Greyscale {
		desc += " grey"
	}
	return &result{body: res.Body, contentType: res.Format.MIME(), vary: vary, desc: desc}, nil
}
