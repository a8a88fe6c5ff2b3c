package main

import (
	"bytes"
	"image"
	_ "image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// TestTranscodeTool applies the repository policy's profiles to corpus
// files and checks the file written and what is printed.
func TestTranscodeTool(t *testing.T) {
	repo := filepath.Join(testenv.ModuleRoot(t), "policy.toml")
	photo := filepath.Join(testenv.Corpus(t, "images"), "imagor__people.jpg") // 2000x2950
	css := filepath.Join(testenv.Corpus(t, "html"), "sample_bootstrap.css")
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		code    int
		want    []string // regexps of the output, in order
		maxSide int      // the written image's larger side
		same    string   // the written file equals this one
	}{
		{name: "light photo", code: 0, maxSide: 800,
			args: []string{"-profile", "light", "-in", photo, "-out", filepath.Join(dir, "light.jpg")},
			want: []string{
				`profile "light" of .*policy\.toml, engine \w+`,
				`in:   .*people\.jpg  image/jpeg  881937 bytes  2000x2950 jpeg`,
				`out:  .*light\.jpg  image/jpeg  \d+ bytes  542x800 jpeg  \(\d+\.\d% of the original\)`,
				`did:  image/jpeg q=50 542w; original=881937`,
				`time: \d`,
			}},
		{name: "tiny photo, WebP accepted", code: 0, maxSide: 320,
			args: []string{"-profile", "tiny", "-in", photo, "-out", filepath.Join(dir, "tiny.jpg"), "-accept", "image/webp,image/*"},
			want: []string{`out:  .*tiny\.jpg  image/(jpeg|webp)  \d+ bytes  217x320`, `did:  image/`}},
		{name: "css with gzip", code: 0,
			args: []string{"-profile", "light", "-in", css, "-out", filepath.Join(dir, "light.css"), "-accept-encoding", "gzip"},
			want: []string{`in:   .*bootstrap\.css  text/css; charset=utf-8  \d+ bytes`, `out:  .*light\.css  text/css; charset=utf-8 \(gzip\)  \d+ bytes`, `did:  .*gzip`}},
		{name: "css, nothing accepted", code: 0, same: css,
			args: []string{"-profile", "light", "-in", css, "-out", filepath.Join(dir, "pass.css")},
			want: []string{`\(100\.0% of the original\)`, `did:  nothing: the original passes \(transcode: pass original: not-applicable\)`}},
		{name: "unknown profile", code: 1,
			args: []string{"-profile", "nope", "-in", photo, "-out", filepath.Join(dir, "x")},
			want: []string{`has no profile "nope"`}},
		{name: "missing input", code: 1,
			args: []string{"-profile", "light", "-in", filepath.Join(dir, "none.jpg"), "-out", filepath.Join(dir, "x")},
			want: []string{`none\.jpg`}},
		{name: "no -out", code: 2, args: []string{"-profile", "light", "-in", photo}, want: []string{`Usage: icapd transcode`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := runInOrder(t, tt.code, tt.want, append([]string{"transcode", "-policy", repo}, tt.args...)...)
			if code != 0 {
				return
			}
			outFile := tt.args[len(tt.args)-1]
			for i, a := range tt.args {
				if a == "-out" {
					outFile = tt.args[i+1]
				}
			}
			got, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			in, _ := os.ReadFile(tt.args[3])
			if tt.same != "" {
				want, _ := os.ReadFile(tt.same)
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s", outFile, tt.same)
				}
				return
			}
			if len(got) == 0 || len(got) >= len(in) {
				t.Errorf("output %d bytes, input %d", len(got), len(in))
			}
			if tt.maxSide > 0 {
				cfg, _, err := image.DecodeConfig(bytes.NewReader(got))
				if err != nil && !bytes.HasPrefix(got[8:], []byte("WEBP")) {
					t.Fatalf("output does not decode: %v", err)
				}
				if err == nil && max(cfg.Width, cfg.Height) != tt.maxSide {
					t.Errorf("output %dx%d, want the larger side %d", cfg.Width, cfg.Height, tt.maxSide)
				}
			}
		})
	}
}
