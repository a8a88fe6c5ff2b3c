package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/edgeadapt/edgeadapt/transcode/compress"
	"github.com/edgeadapt/edgeadapt/transcode/html"
)

// text adapts a text body as a stream: decode the origin's coding (with
// bomb limits) → rewrite HTML → minify → encode for the client, into a
// buffer that may not grow past the original size.
func (t *Transcoder) text(ctx context.Context, body []byte, in Input, p Profile) (*result, *PassError) {
	ct := in.Header.Get("Content-Type")
	mt := html.MediaType(ct)
	origCE := compress.Normalize(in.Header.Get("Content-Encoding"))
	outCE := origCE
	var vary []string
	if p.Compress {
		outCE = compress.Negotiate(in.AcceptEncoding, p.Encodings)
		vary = []string{"Accept-Encoding"}
	}
	rewrite := p.Placeholders && mt == "text/html"
	minify := p.Minify && html.Minifiable(ct)
	if !rewrite && !minify && outCE == origCE {
		return nil, pass(ReasonNotApplicable, nil)
	}
	dec, err := compress.NewReader(bytes.NewReader(body), origCE,
		compress.Limits{MaxDecodedBytes: t.Limits.MaxDecodedBytes, MaxRatio: t.Limits.MaxRatio})
	if err != nil {
		return nil, pass(ReasonNotApplicable, err)
	}
	defer dec.Close()

	// Stages are chained with pipes; each runs in its own goroutine and
	// ends the pipe with its error, so the first failure ends the chain.
	var r io.Reader = ctxReader{ctx, dec}
	var stats html.RewriteStats
	if rewrite {
		pr, pw := io.Pipe()
		src := r
		done := make(chan struct{})
		go func() {
			defer close(done)
			var err error
			stats, err = html.Rewrite(pw, src, html.RewriteOptions{Placeholders: true, DropHints: true})
			pw.CloseWithError(err)
		}()
		// On an early return, stop the rewriter and wait for it before
		// the decoder it reads is closed.
		defer func() { pr.Close(); <-done }()
		r = pr
	}
	out := &capBuffer{max: len(body)}
	enc, err := compress.NewWriter(out, outCE)
	if err != nil {
		return nil, pass(ReasonNotApplicable, err)
	}
	if minify {
		err = html.MinifyReader(enc, ct, r)
	} else {
		_, err = io.Copy(enc, r)
	}
	if err == nil {
		err = enc.Close()
	}
	switch {
	case err == nil:
	case errors.Is(err, compress.ErrBomb):
		return nil, pass(ReasonBomb, err)
	case errors.Is(err, errCapExceeded):
		return nil, pass(ReasonLarger, err)
	case ctx.Err() != nil:
		return nil, pass(ReasonTimeout, err)
	default:
		return nil, pass(ReasonError, err)
	}
	var desc []string
	desc = append(desc, mt)
	if minify {
		desc = append(desc, "minify")
	}
	if rewrite {
		desc = append(desc, fmt.Sprintf("placeholders=%d", stats.Images))
	}
	if outCE != compress.Identity {
		desc = append(desc, outCE)
	}
	return &result{body: out.Bytes(), contentType: ct, encoding: outCE, vary: vary, desc: strings.Join(desc, " ")}, nil
}

var errCapExceeded = errors.New("transcode: output not smaller than the original")

// capBuffer is a bytes.Buffer that refuses to grow to max bytes: once the
// output is as large as the original there is no point going on.
type capBuffer struct {
	bytes.Buffer
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if c.Len()+len(p) >= c.max {
		return 0, errCapExceeded
	}
	return c.Buffer.Write(p)
}

// ctxReader stops reading once ctx is done, so a timed-out text job ends
// at its next read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
