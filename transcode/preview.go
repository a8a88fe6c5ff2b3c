package transcode

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
)

// PreviewFile applies profile p to the file at path as if an origin had
// served it with the Content-Type its extension (or content) implies, for
// a client sending accept and acceptEncoding. Operators use it to see what
// their slow clients will get; the icapd transcode command wraps it.
func PreviewFile(ctx context.Context, path string, p Profile, accept, acceptEncoding string, lim Limits) (*Output, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	ct := mime.TypeByExtension(filepath.Ext(path))
	if ct == "" {
		ct = http.DetectContentType(b)
	}
	h := http.Header{"Content-Type": {ct}, "Content-Length": {fmt.Sprint(len(b))}}
	return Transcode(ctx, Input{Bytes: b, Header: h, Accept: accept, AcceptEncoding: acceptEncoding}, p, lim)
}
