package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	_ "image/gif" // decoders for Object.Format
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "golang.org/x/image/webp"
	xhtml "golang.org/x/net/html"

	"github.com/edgeadapt/edgeadapt/internal/testbed"
)

// DefaultConns is how many connections a Browser opens to one proxy at
// most, as browsers do per host (HTTP/1.1).
const DefaultConns = 6

// Request headers of a current desktop browser: the page and the images
// are asked for with the Accept a browser sends for each.
const (
	acceptHTML     = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	acceptImage    = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
	acceptEncoding = "gzip, deflate"
	userAgent      = "Mozilla/5.0 (X11; Linux x86_64) edgeadapt-e2e"
)

// Browser loads pages from inside a client host through an HTTP proxy,
// like a browser: the HTML, then every image it references (an <img>
// src or the first srcset candidate, a <source> srcset, and the links
// icapd's placeholders put in their place) over at most Conns parallel
// connections. Each Load starts with no connection open and closes them
// all at its end, as a browser does after its idle timeout, so the
// proxy's side of every connection ends and a passive collector reports
// it. Sockets pin cubic.
type Browser struct {
	Host  *testbed.Host
	Proxy string // host:port of the HTTP proxy
	// Conns bounds the parallel connections; zero means DefaultConns.
	Conns int
	// Timeout bounds one Load; zero means no bound beyond the context.
	Timeout time.Duration
}

// Object is one response a Load received.
type Object struct {
	URL         string
	Status      int
	ContentType string
	Encoding    string // Content-Encoding
	Adapted     string // X-Adapted, set by icapd on what it changed
	Bytes       int    // body bytes as received (before any decoding)
	SHA256      string // of the body as received
	// Format, Width and Height describe a decoded image; DecodeErr says
	// why an image body did not decode.
	Format        string
	Width, Height int
	DecodeErr     error

	body []byte
}

// Load is one page load.
type Load struct {
	// Duration runs from the page request to the last byte of the last
	// image.
	Duration time.Duration
	// WireBytes is everything the browser read from the proxy: status
	// lines, headers and bodies.
	WireBytes int64
	// Conns is how many connections the load opened.
	Conns  int
	HTML   Object
	Images []Object
}

// BodyBytes is the sum of the body bytes of every object.
func (l *Load) BodyBytes() int64 {
	n := int64(l.HTML.Bytes)
	for _, o := range l.Images {
		n += int64(o.Bytes)
	}
	return n
}

// Objects returns the HTML and then the images.
func (l *Load) Objects() []Object { return append([]Object{l.HTML}, l.Images...) }

// Load fetches pageURL and everything it references; it fails if any
// request fails (a status other than 200 is not a failure).
func (b *Browser) Load(ctx context.Context, pageURL string) (*Load, error) {
	if b.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.Timeout)
		defer cancel()
	}
	conns := b.Conns
	if conns <= 0 {
		conns = DefaultConns
	}
	var wire atomic.Int64
	var opened atomic.Int32
	dialer := testbed.Dialer("cubic")
	tr := &http.Transport{
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: b.Proxy}),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := b.Host.DialWith(ctx, dialer, network, addr)
			if err != nil {
				return nil, err
			}
			opened.Add(1)
			return &countConn{Conn: c, n: &wire}, nil
		},
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true, // the browser asks for gzip itself and counts the bytes as sent
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	page, err := fetch(ctx, client, pageURL, acceptHTML)
	if err != nil {
		return nil, err
	}
	text, err := decoded(page)
	if err != nil {
		return nil, fmt.Errorf("page %s: %w", pageURL, err)
	}
	refs, err := imageRefs(pageURL, text)
	if err != nil {
		return nil, fmt.Errorf("page %s: %w", pageURL, err)
	}
	l := &Load{HTML: page, Images: make([]Object, len(refs))}
	errs := make([]error, len(refs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(conns, len(refs)) {
		wg.Go(func() {
			for i := range work {
				l.Images[i], errs[i] = fetch(ctx, client, refs[i], acceptImage)
			}
		})
	}
	for i := range refs {
		work <- i
	}
	close(work)
	wg.Wait()
	l.Duration = time.Since(start)
	tr.CloseIdleConnections()
	l.WireBytes, l.Conns = wire.Load(), int(opened.Load())
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", refs[i], err)
		}
	}
	for i := range l.Images {
		describe(&l.Images[i])
	}
	return l, nil
}

// fetch GETs u and reads the whole body.
func fetch(ctx context.Context, client *http.Client, u, accept string) (Object, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Object{}, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", acceptEncoding)
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return Object{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Object{}, fmt.Errorf("GET %s: body: %w", u, err)
	}
	sum := sha256.Sum256(body)
	return Object{
		URL: u, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
		Encoding: resp.Header.Get("Content-Encoding"), Adapted: resp.Header.Get("X-Adapted"),
		Bytes: len(body), SHA256: hex.EncodeToString(sum[:]), body: body,
	}, nil
}

// decoded returns o's body without its Content-Encoding.
func decoded(o Object) ([]byte, error) {
	switch strings.ToLower(o.Encoding) {
	case "", "identity":
		return o.body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(o.body))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		return io.ReadAll(zr)
	}
	return nil, fmt.Errorf("content-encoding %q not supported", o.Encoding)
}

// describe decodes an image body (after the Load is timed, so decoding
// costs the load nothing).
func describe(o *Object) {
	if o.Status != http.StatusOK || !strings.HasPrefix(o.ContentType, "image/") {
		return
	}
	body, err := decoded(*o)
	if err != nil {
		o.DecodeErr = err
		return
	}
	img, format, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		o.DecodeErr = err
		return
	}
	o.Format, o.Width, o.Height = format, img.Bounds().Dx(), img.Bounds().Dy()
}

// imageRefs returns the absolute URLs of the images page references, each
// once, in document order: <img src> (else the first srcset candidate),
// <source srcset>, and <a class="ea-img" href> (icapd's placeholder for
// an image, which a user may open).
func imageRefs(pageURL string, page []byte) ([]string, error) {
	base, err := url.Parse(pageURL)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	add := func(ref string) {
		ref = strings.TrimSpace(ref)
		if ref == "" {
			return
		}
		u, err := base.Parse(ref)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return
		}
		u.Fragment = ""
		if s := u.String(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	z := xhtml.NewTokenizer(bytes.NewReader(page))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			if z.Err() == io.EOF {
				return out, nil
			}
			return out, z.Err()
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			a := map[string]string{}
			for _, at := range tok.Attr {
				a[at.Key] = at.Val
			}
			switch tok.Data {
			case "img":
				if a["src"] != "" {
					add(a["src"])
				} else {
					add(firstCandidate(a["srcset"]))
				}
			case "source":
				add(firstCandidate(a["srcset"]))
			case "a":
				if hasClass(a["class"], "ea-img") {
					add(a["href"])
				}
			}
		}
	}
}

func firstCandidate(srcset string) string {
	first, _, _ := strings.Cut(srcset, ",")
	if f := strings.Fields(first); len(f) > 0 {
		return f[0]
	}
	return ""
}

func hasClass(attr, class string) bool {
	for _, c := range strings.Fields(attr) {
		if c == class {
			return true
		}
	}
	return false
}

// countConn counts the bytes read from a connection.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// Browsing is a Browser loading one page over and over in the background:
// another user of the LAN.
type Browsing struct {
	stop  chan struct{}
	done  chan struct{}
	loads []*Load
	err   error
}

// Browse loads pageURL every interval (or back to back when a load takes
// longer) until Stop.
func (b *Browser) Browse(ctx context.Context, pageURL string, every time.Duration) *Browsing {
	bg := &Browsing{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(bg.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			l, err := b.Load(ctx, pageURL)
			if err != nil {
				bg.err = err
				return
			}
			bg.loads = append(bg.loads, l)
			select {
			case <-bg.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return bg
}

// Stop ends the browsing after the load in progress and returns every
// load, and the error that ended it early, if any.
func (bg *Browsing) Stop() ([]*Load, error) {
	close(bg.stop)
	<-bg.done
	return bg.loads, bg.err
}
