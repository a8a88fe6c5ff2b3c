package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// BenchmarkEngines transcodes the corpus photos to 800 px wide q40 JPEG
// with each engine of the build; MP/s is source megapixels per second.
// bench/transcode.sh runs the full comparison with vipsthumbnail.
func BenchmarkEngines(b *testing.B) {
	dir := testenv.Corpus(b, "images")
	names := []string{"bimg__vertical.jpg", "bimg__test_exif_full.jpg", "imagor__people.jpg",
		"bimg__northern_cardinal_bird.jpg", "thumbor__Giunchedi_Filippo_January_2015_01.png", "sharp__4.webp"}
	opts := Options{MaxWidth: 800, Quality: 40, Formats: []Format{JPEG}, StripMetadata: true}
	for _, eng := range testEngines {
		for _, n := range names {
			src, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				b.Fatal(err)
			}
			info, err := Probe(src)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(eng.Name()+"/"+n, func(b *testing.B) {
				for b.Loop() {
					if _, err := eng.Transcode(context.Background(), src, info, opts); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(info.Width*info.Height)/1e6*float64(b.N)/b.Elapsed().Seconds(), "MP/s")
			})
		}
	}
}
