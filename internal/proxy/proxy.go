package proxy

import (
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/elazarl/goproxy"

	"github.com/edgeadapt/edgeadapt/icap"
)

// Proxy is an HTTP forward proxy that adapts requests with Reqmod and
// responses with Respmod, the same icap.Handlers icapd serves, run in
// process (ServeInProcess). CONNECT is tunnelled untouched.
type Proxy struct {
	// Reqmod and Respmod adapt requests and responses; nil passes them.
	// Their service paths are ReqmodPath and RespmodPath.
	Reqmod, Respmod         icap.Handler
	ReqmodPath, RespmodPath string
	// Logger receives failures of the pipeline (nil: slog.Default()).
	Logger *slog.Logger
}

// Handler returns the proxy as an http.Handler, built on goproxy.
func (p *Proxy) Handler() http.Handler {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slog.NewLogLogger(p.logger().Handler(), slog.LevelDebug)
	// Verify origins' certificates (goproxy's default transport does not)
	// and never chain to the environment's proxy.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	gp.Tr = tr
	// Keep the client's Accept-Encoding, as Squid does: the policy
	// negotiates its compression from it (ctx.Req, which goproxy would
	// otherwise strip before RESPMOD sees it), and what an origin
	// encodes for the client passes to it (decoded and re-encoded by the
	// transcoder when adapted). A client that sent none still gets
	// identity: the transport then asks the origin for gzip itself and
	// decodes the answer (http.Response.Uncompressed), dropping its
	// Content-Encoding and Content-Length.
	gp.KeepAcceptEncoding = true
	gp.OnRequest().DoFunc(p.request)
	gp.OnResponse().DoFunc(p.response)
	return gp
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// clientIP returns the host of the proxy client's address.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (p *Proxy) request(req *http.Request, _ *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	if p.Reqmod == nil {
		return req, nil
	}
	body := &trackedBody{ReadCloser: req.Body}
	if req.Body != nil {
		req.Body = body
	}
	res, err := ServeInProcess(req.Context(), p.Reqmod, p.ReqmodPath, req, nil, clientIP(req))
	if err != nil {
		return req, p.fail("reqmod", req, body.read, err)
	}
	switch m := res.Msg.(type) {
	case *http.Request:
		// The handler may have edited the request in place; keep what
		// goproxy needs of the original.
		m.RemoteAddr = req.RemoteAddr
		return m.WithContext(req.Context()), nil
	case *http.Response:
		return req, m
	}
	return req, nil
}

func (p *Proxy) response(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
	if resp == nil || p.Respmod == nil || ctx.Req == nil {
		return resp
	}
	body := &trackedBody{ReadCloser: resp.Body}
	if resp.Body == nil {
		body.ReadCloser = http.NoBody
	}
	resp.Body = body
	res, err := ServeInProcess(ctx.Req.Context(), p.Respmod, p.RespmodPath, ctx.Req, resp, clientIP(ctx.Req))
	if err != nil {
		if f := p.fail("respmod", ctx.Req, body.read, err); f != nil {
			resp.Body.Close()
			return f
		}
		return resp
	}
	if m, ok := res.Msg.(*http.Response); ok {
		return m
	}
	return resp
}

// fail logs a failure of the pipeline. The original message passes (nil)
// unless the handler already read part of its body, which cannot be
// sent again: then the client gets a 502.
func (p *Proxy) fail(service string, req *http.Request, read bool, err error) *http.Response {
	if !read {
		p.logger().Warn("proxy: adaptation failed; passing the original", "service", service, "url", req.URL.String(), "err", err)
		return nil
	}
	p.logger().Error("proxy: adaptation failed after reading the body; answering 502", "service", service, "url", req.URL.String(), "err", err)
	return goproxy.NewResponse(req, goproxy.ContentTypeText, http.StatusBadGateway, "adaptation failed\n")
}

// trackedBody records whether the body was read.
type trackedBody struct {
	io.ReadCloser
	read bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read = true
	return b.ReadCloser.Read(p)
}
