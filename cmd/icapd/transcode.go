package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/transcode"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// transcodeMain is `icapd transcode`: it applies a profile of the policy
// to a file, as icapd would to a response of that type for a client whose
// request had the given Accept and Accept-Encoding, writes the result to
// -out (the original when transcode passes it) and prints sizes,
// dimensions, format and time: operators preview what their slow clients
// get. It exits 0 when it wrote -out, 1 on errors, 2 for bad flags.
func transcodeMain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("icapd transcode", flag.ContinueOnError)
	fset.SetOutput(stderr)
	profile := fset.String("profile", "", "name of a profile of the policy ([profiles.NAME]) (required)")
	in := fset.String("in", "", "input file (required)")
	out := fset.String("out", "", "output file (required)")
	accept := fset.String("accept", "", `the client's Accept, e.g. "image/webp,image/*" (WebP is produced only if it lists image/webp)`)
	acceptEncoding := fset.String("accept-encoding", "", `the client's Accept-Encoding, e.g. "br, gzip"`)
	ctype := fset.String("type", "", "content type of the input (default: sniffed from its bytes, else its extension)")
	file := fset.String("policy", "", "policy file (default ./policy.toml, else the built-in copy)")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: icapd transcode -profile NAME -in FILE -out FILE [-accept TYPES] [-policy FILE] [flags]\n\nApplies a transcoding profile of the policy to a file and prints what it did.\n\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return exitUsage
	}
	if *profile == "" || *in == "" || *out == "" || fset.NArg() > 0 {
		fset.Usage()
		return exitUsage
	}
	p, name, err := loadPolicy(*file)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitError
	}
	defer p.Close()
	prof := p.Profile(*profile)
	if prof == nil {
		fmt.Fprintf(stderr, "icapd transcode: %s has no profile %q\n", name, *profile)
		return exitError
	}
	src, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintf(stderr, "icapd transcode: %v\n", err)
		return exitError
	}
	ct := *ctype
	if ct == "" {
		ct = sniffType(*in, src)
	}
	mt := adapt.MediaType(ct)
	tr := &transcode.Transcoder{}
	res, err := tr.Transcode(context.Background(), transcode.Input{
		Bytes:  src,
		Header: http.Header{"Content-Type": {ct}},
		Accept: *accept, AcceptEncoding: *acceptEncoding,
	}, adapt.Profile(prof, mt))
	var perr *transcode.PassError
	if err != nil && !errors.As(err, &perr) {
		fmt.Fprintf(stderr, "icapd transcode: %v\n", err)
		return exitError
	}
	if err := os.WriteFile(*out, res.Body, 0o644); err != nil {
		fmt.Fprintf(stderr, "icapd transcode: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "profile %q of %s, engine %s\n", *profile, name, tr.Engine.Name())
	fmt.Fprintf(stdout, "in:   %s  %s  %d bytes%s\n", *in, ct, len(src), dimensions(src))
	outType := res.Header.Get("Content-Type")
	if enc := res.Header.Get("Content-Encoding"); enc != "" {
		outType += " (" + enc + ")"
	}
	fmt.Fprintf(stdout, "out:  %s  %s  %d bytes%s", *out, outType, len(res.Body), dimensions(res.Body))
	if len(src) > 0 {
		fmt.Fprintf(stdout, "  (%.1f%% of the original)", 100*float64(len(res.Body))/float64(len(src)))
	}
	fmt.Fprintln(stdout)
	if perr != nil {
		fmt.Fprintf(stdout, "did:  nothing: the original passes (%v)\n", perr)
	} else {
		fmt.Fprintf(stdout, "did:  %s\n", res.Header.Get("X-Adapted"))
	}
	fmt.Fprintf(stdout, "time: %v\n", res.Elapsed.Round(time.Microsecond))
	return exitOK
}

// sniffType returns the content type of a file: from its bytes, else
// from its extension, else application/octet-stream.
func sniffType(name string, b []byte) string {
	ct := http.DetectContentType(b)
	if ct == "application/octet-stream" || ct == "text/plain; charset=utf-8" {
		if byExt := mime.TypeByExtension(filepath.Ext(name)); byExt != "" {
			return byExt
		}
	}
	return ct
}

// dimensions returns "  WxH" (as displayed, orientation applied; with the
// frame count of an animation) for an image, "" for anything else.
func dimensions(b []byte) string {
	info, err := image.Probe(b)
	if err != nil {
		return ""
	}
	w, h := info.DisplaySize()
	if info.Frames > 1 {
		return fmt.Sprintf("  %dx%d %s, %d frames", w, h, info.Format, info.Frames)
	}
	return fmt.Sprintf("  %dx%d %s", w, h, info.Format)
}
