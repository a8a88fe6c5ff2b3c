package transcode_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/edgeadapt/edgeadapt/transcode"
)

func ExampleTranscode() {
	page := "<html><body><p>Hello</p>" + strings.Repeat(`<img src="/big.jpg" alt="A big photo">  `, 20) + "</body></html>"
	in := transcode.Input{
		Bytes:          []byte(page),
		Header:         http.Header{"Content-Type": {"text/html; charset=utf-8"}, "Etag": {`"v1"`}},
		AcceptEncoding: "gzip",
	}
	p := transcode.Profile{Name: "modem", Minify: true, Placeholders: true, Compress: true}
	out, err := transcode.Transcode(context.Background(), in, p, transcode.Limits{})
	if errors.Is(err, transcode.ErrPass) {
		fmt.Println("sending the original:", err)
		return
	}
	fmt.Println(out.Header.Get("Content-Encoding"))
	fmt.Println(out.Header.Get("Vary"))
	fmt.Println(out.Header.Get("X-Adapted"))
	fmt.Println(len(out.Body) < len(page))
	// Output:
	// gzip
	// Accept-Encoding
	// text/html minify placeholders=20 gzip; original=838
	// true
}

func ExampleTranscode_noTransform() {
	in := transcode.Input{
		Bytes:  []byte("body { color: red; }"),
		Header: http.Header{"Content-Type": {"text/css"}, "Cache-Control": {"no-transform"}},
	}
	out, err := transcode.Transcode(context.Background(), in, transcode.Profile{Minify: true}, transcode.Limits{})
	var pe *transcode.PassError
	if errors.As(err, &pe) {
		fmt.Println(pe.Reason, string(out.Body))
	}
	// Output: no-transform body { color: red; }
}
