package adapt_test

import (
	"fmt"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/policy"
)

// A policy profile becomes the transcode.Profile for each media type it
// handles; for other types it is empty, and transcode passes the body.
func ExampleProfile() {
	p, err := policy.Parse("policy.toml", []byte(`
[profiles.tiny.image]
max_width = 320
quality = 30
format = "webp"
[profiles.tiny.html]
minify = true
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, mt := range []string{"image/png", "text/html", "application/pdf"} {
		tp := adapt.Profile(p.Profile("tiny"), mt)
		fmt.Printf("%s: width %d, quality %d, formats %v, minify %t\n", mt, tp.MaxWidth, tp.Quality, tp.Formats, tp.Minify)
	}
	// Output:
	// image/png: width 320, quality 30, formats [webp png], minify false
	// text/html: width 0, quality 0, formats [], minify true
	// application/pdf: width 0, quality 0, formats [], minify false
}
