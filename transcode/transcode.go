package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/transcode/compress"
	"github.com/edgeadapt/edgeadapt/transcode/image"
)

// Default limits, used where a Limits field is zero.
const (
	// DefaultMaxInputBytes is the largest body held for transformation;
	// a bigger one passes unchanged.
	DefaultMaxInputBytes = 32 << 20
	// DefaultMaxPixels refuses images above 50 megapixels (all frames
	// counted): a 24 MP photo is adapted, the 99.6 MP bomb is not.
	DefaultMaxPixels = 50_000_000
	// DefaultTimeout bounds one transcode, including the wait for a slot.
	DefaultTimeout = 5 * time.Second
)

// DefaultMaxConcurrent is the number of transcodes run at once when
// Limits.MaxConcurrent is zero: one per CPU.
func DefaultMaxConcurrent() int { return runtime.GOMAXPROCS(0) }

// Limits bounds the resources of a transcode. The zero value is a valid
// configuration using the Default... values.
type Limits struct {
	// MaxInputBytes is the largest (encoded) body held in memory.
	MaxInputBytes int64 `json:"max_input_bytes"`
	// MaxPixels is the largest width×height×frames decoded.
	MaxPixels int64 `json:"max_pixels"`
	// Timeout bounds one transcode, waiting for a slot included. A decode
	// that overruns keeps its slot until it ends, so slow work still
	// counts against MaxConcurrent.
	Timeout time.Duration `json:"timeout"`
	// MaxConcurrent is the number of transcodes that run at once.
	MaxConcurrent int `json:"max_concurrent"`
	// MaxDecodedBytes and MaxRatio bound the decoding of a compressed
	// origin body (compress.DefaultMaxDecodedBytes, compress.DefaultMaxRatio).
	MaxDecodedBytes int64 `json:"max_decoded_bytes"`
	MaxRatio        int64 `json:"max_ratio"`
}

func (l Limits) maxInput() int64        { return orDefault(l.MaxInputBytes, DefaultMaxInputBytes) }
func (l Limits) maxPixels() int64       { return orDefault(l.MaxPixels, DefaultMaxPixels) }
func (l Limits) timeout() time.Duration { return orDefault(l.Timeout, DefaultTimeout) }
func (l Limits) maxConcurrent() int     { return orDefault(l.MaxConcurrent, DefaultMaxConcurrent()) }

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Input is one HTTP response to adapt and the request headers that decide
// the variant.
type Input struct {
	// Body is read up to Limits.MaxInputBytes+1 bytes. If nil, Bytes is
	// used. Transcode does not close it.
	Body io.Reader
	// Bytes is the whole body when Body is nil. It is never modified.
	Bytes []byte
	// Header is the response header (Content-Type, Content-Encoding,
	// ETag, Cache-Control...). It is not modified.
	Header http.Header
	// Accept and AcceptEncoding are the request's headers.
	Accept, AcceptEncoding string
	// CacheControl is the request's Cache-Control: a client may ask for
	// no-transform too (RFC 9111 section 5.2.1.6).
	CacheControl string
}

// Output is the result of Transcode. After a pass (a *PassError) it holds
// the original body and header.
type Output struct {
	// Body is the new body, or after a pass the original bytes read.
	Body []byte
	// Rest is the unread remainder of Input.Body after a pass for size;
	// nil otherwise. Reader returns Body followed by Rest.
	Rest io.Reader
	// Header is the complete response header to send.
	Header http.Header
	// Adapted is true when Body is a new representation.
	Adapted bool
	// Description is what X-Adapted says, without the original size.
	Description string
	// OriginalBytes is the size of the original (encoded) body read.
	OriginalBytes int64
	// Elapsed is the time spent, waiting for a slot included.
	Elapsed time.Duration
}

// Reader returns the body to send: Body followed by Rest.
func (o *Output) Reader() io.Reader {
	if o.Rest == nil {
		return bytes.NewReader(o.Body)
	}
	return io.MultiReader(bytes.NewReader(o.Body), o.Rest)
}

// Reasons for passing the original, in PassError.Reason and Stats.
const (
	ReasonNoTransform   = "no-transform"    // Cache-Control: no-transform
	ReasonNotApplicable = "not-applicable"  // the profile does nothing to this content
	ReasonTooBig        = "too-big"         // body over MaxInputBytes
	ReasonTooManyPixels = "too-many-pixels" // image over MaxPixels
	ReasonBomb          = "bomb"            // compressed body over its decode limits
	ReasonRefused       = "refused"         // the engine does not handle this input
	ReasonLarger        = "larger"          // nothing smaller than the original came out
	ReasonTimeout       = "timeout"         // over Limits.Timeout, or ctx done
	ReasonError         = "error"           // corrupt input or a failing transform
)

var reasons = []string{ReasonNoTransform, ReasonNotApplicable, ReasonTooBig, ReasonTooManyPixels,
	ReasonBomb, ReasonRefused, ReasonLarger, ReasonTimeout, ReasonError}

// ErrPass matches every *PassError with errors.Is.
var ErrPass = errors.New("transcode: pass the original")

// PassError says why the original must be sent unchanged.
type PassError struct {
	Reason string // one of the Reason... constants
	Err    error  // the underlying cause, if any
}

func (e *PassError) Error() string {
	if e.Err == nil {
		return "transcode: pass original: " + e.Reason
	}
	return "transcode: pass original: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *PassError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrPass) true.
func (e *PassError) Is(target error) bool { return target == ErrPass }

func pass(reason string, err error) *PassError { return &PassError{Reason: reason, Err: err} }

// Transcoder runs transcodes with one engine under one set of limits; its
// MaxConcurrent slots are shared by all calls. The zero value is ready to
// use with the build's default engine and default limits.
type Transcoder struct {
	// Engine transcodes images (image.DefaultEngine() when nil).
	Engine image.Engine
	// Limits bounds each transcode.
	Limits Limits
	// Logger receives one line per pass with its reason (nil: discarded).
	Logger *slog.Logger

	once    sync.Once
	sem     chan struct{}
	adapted atomic.Int64
	passed  [9]atomic.Int64 // indexed like reasons
	in, out atomic.Int64
}

// Stats counts what a Transcoder did.
type Stats struct {
	Adapted  int64            // bodies replaced
	Passed   map[string]int64 // originals passed, by reason
	BytesIn  int64            // original bytes of adapted bodies
	BytesOut int64            // their adapted bytes
}

// Stats returns the counters since the Transcoder was made.
func (t *Transcoder) Stats() Stats {
	s := Stats{Adapted: t.adapted.Load(), Passed: map[string]int64{}, BytesIn: t.in.Load(), BytesOut: t.out.Load()}
	for i, r := range reasons {
		if n := t.passed[i].Load(); n > 0 {
			s.Passed[r] = n
		}
	}
	return s
}

func (t *Transcoder) init() {
	t.once.Do(func() {
		t.sem = make(chan struct{}, t.Limits.maxConcurrent())
		if t.Engine == nil {
			t.Engine = image.DefaultEngine()
		}
	})
}

var (
	sharedMu  sync.Mutex
	sharedTrs = map[Limits]*Transcoder{}
)

// Transcode adapts in with profile p under lim, using the build's default
// engine. Calls with equal Limits share one Transcoder, hence one set of
// MaxConcurrent slots.
func Transcode(ctx context.Context, in Input, p Profile, lim Limits) (*Output, error) {
	sharedMu.Lock()
	t := sharedTrs[lim]
	if t == nil {
		t = &Transcoder{Limits: lim}
		sharedTrs[lim] = t
	}
	sharedMu.Unlock()
	return t.Transcode(ctx, in, p)
}

// Transcode adapts in with profile p. The error is nil or a *PassError; in
// both cases the Output is complete (see the package documentation).
func (t *Transcoder) Transcode(ctx context.Context, in Input, p Profile) (*Output, error) {
	t.init()
	start := time.Now()
	out, perr := t.transcode(ctx, in, p)
	out.Elapsed = time.Since(start)
	if perr != nil {
		for i, r := range reasons {
			if r == perr.Reason {
				t.passed[i].Add(1)
			}
		}
		if t.Logger != nil {
			lvl := slog.LevelDebug
			if perr.Reason == ReasonError || perr.Reason == ReasonTimeout || perr.Reason == ReasonBomb {
				lvl = slog.LevelWarn
			}
			t.Logger.Log(ctx, lvl, "transcode: passing original", "reason", perr.Reason,
				"content_type", in.Header.Get("Content-Type"), "bytes", out.OriginalBytes, "err", perr.Err)
		}
		return out, perr
	}
	t.adapted.Add(1)
	t.in.Add(out.OriginalBytes)
	t.out.Add(int64(len(out.Body)))
	return out, nil
}

func (t *Transcoder) transcode(ctx context.Context, in Input, p Profile) (*Output, *PassError) {
	out := &Output{Header: in.Header.Clone()}
	if out.Header == nil {
		out.Header = http.Header{}
	}
	// Read the body first so that every pass hands it back.
	body := in.Bytes
	if in.Body != nil {
		b, err := io.ReadAll(io.LimitReader(in.Body, t.Limits.maxInput()+1))
		body = b
		if err != nil {
			out.Body, out.OriginalBytes = body, int64(len(body))
			return out, pass(ReasonError, fmt.Errorf("read body: %w", err))
		}
		if int64(len(b)) > t.Limits.maxInput() {
			out.Body, out.Rest, out.OriginalBytes = body, in.Body, int64(len(body))
			return out, pass(ReasonTooBig, fmt.Errorf("body over %d bytes", t.Limits.maxInput()))
		}
	} else if int64(len(body)) > t.Limits.maxInput() {
		out.Body, out.OriginalBytes = body, int64(len(body))
		return out, pass(ReasonTooBig, fmt.Errorf("body of %d bytes over %d", len(body), t.Limits.maxInput()))
	}
	out.Body, out.OriginalBytes = body, int64(len(body))
	if hasToken(in.Header.Values("Cache-Control"), "no-transform") || hasToken([]string{in.CacheControl}, "no-transform") {
		return out, pass(ReasonNoTransform, nil)
	}
	if in.Header.Get("Content-Range") != "" {
		return out, pass(ReasonNotApplicable, errors.New("partial content"))
	}
	var job func(context.Context) (*result, *PassError)
	switch kind := classify(in.Header.Get("Content-Type")); {
	case kind == kindImage && p.images():
		job = func(ctx context.Context) (*result, *PassError) { return t.image(ctx, body, in, p) }
	case kind == kindText && p.text():
		job = func(ctx context.Context) (*result, *PassError) { return t.text(ctx, body, in, p) }
	default:
		return out, pass(ReasonNotApplicable, nil)
	}
	res, perr := t.run(ctx, job)
	if perr != nil {
		return out, perr
	}
	if len(res.body) >= len(body) {
		return out, pass(ReasonLarger, fmt.Errorf("%d bytes from %d", len(res.body), len(body)))
	}
	out.Body, out.Adapted, out.Description = res.body, true, res.desc
	setHeaders(out.Header, in, p, res, body)
	return out, nil
}

// result is what a job produced.
type result struct {
	body        []byte
	contentType string
	encoding    string   // Content-Encoding of body ("" = identity)
	vary        []string // request headers the decision read
	desc        string   // X-Adapted without the original size
}

// run takes a slot and runs job under the timeout. The job runs in its own
// goroutine, which keeps the slot until the job really ends even when the
// caller has given up on it.
func (t *Transcoder) run(ctx context.Context, job func(context.Context) (*result, *PassError)) (*result, *PassError) {
	ctx, cancel := context.WithTimeout(ctx, t.Limits.timeout())
	defer cancel()
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, pass(ReasonTimeout, fmt.Errorf("waiting for a slot: %w", ctx.Err()))
	}
	type done struct {
		r *result
		e *PassError
	}
	ch := make(chan done, 1)
	go func() {
		defer func() { <-t.sem }()
		defer func() {
			if v := recover(); v != nil {
				ch <- done{nil, pass(ReasonError, fmt.Errorf("panic: %v", v))}
			}
		}()
		r, e := job(ctx)
		ch <- done{r, e}
	}()
	select {
	case d := <-ch:
		return d.r, d.e
	case <-ctx.Done():
		return nil, pass(ReasonTimeout, ctx.Err())
	}
}

// hasToken reports whether a comma-separated header (all its values) has
// the token, case-insensitively, ignoring parameters.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(part, "=")
			if strings.EqualFold(strings.TrimSpace(name), token) {
				return true
			}
		}
	}
	return false
}

// Encodings re-exported for Profile.Encodings.
const (
	Brotli = compress.Brotli
	Gzip   = compress.Gzip
	Zstd   = compress.Zstd
)
