package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/edgeadapt/edgeadapt/icap"
)

// Result is what an icap.Handler answered in process.
type Result struct {
	// Code is the ICAP status: 200 (Msg replaces the message), 204 (no
	// modification).
	Code int
	// Header holds the ICAP header fields the handler set (ISTag,
	// X-Policy-Rule...).
	Header http.Header
	// Msg is the adapted *http.Request or *http.Response, nil for 204.
	// Its Body streams what the handler writes (http.NoBody if it has
	// none); the handler runs until it is read to the end or closed.
	Msg any
}

// ServeInProcess runs h on an ICAP request built from req (REQMOD, when
// resp is nil) or resp (RESPMOD), as an ICAP server would, without a
// connection: the encapsulated body is the message's own body, streamed
// (no preview; 204 allowed). clientIP becomes the request's X-Client-IP.
// It returns once the handler has answered its ICAP head; the adapted
// body then streams from the handler. An error means the handler failed
// before answering (it panicked, or answered neither 200 nor 204); the
// original message's body may then have been partly read.
func ServeInProcess(ctx context.Context, h icap.Handler, service string, req *http.Request, resp *http.Response, clientIP string) (*Result, error) {
	method, body := icap.MethodREQMOD, req.Body
	if resp != nil {
		method, body = icap.MethodRESPMOD, resp.Body
	}
	if body == nil {
		body = http.NoBody
	}
	ir, err := icap.NewRequest(method, "icap://127.0.0.1"+service, req, resp)
	if err != nil {
		return nil, err
	}
	ir.Body = body
	ir.Allow204 = true
	ir.ClientIP = clientIP
	if clientIP != "" {
		ir.Header.Set("X-Client-IP", clientIP)
	}
	ir = ir.WithContext(ctx)

	pr, pw := io.Pipe()
	w := &pipeWriter{header: make(http.Header), heads: make(chan head, 1), pw: pw}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				err := fmt.Errorf("icap handler %s panicked: %v", service, p)
				w.answer(head{err: err})
				pw.CloseWithError(err)
				return
			}
			w.answer(head{err: errors.New("icap handler " + service + " returned without answering")})
			if w.code == icap.StatusOK {
				// Like an ICAP server, own the original body once the
				// message is replaced: close it even if the handler
				// stopped early (the client went away), so the origin's
				// connection is released.
				body.Close()
			}
			pw.Close()
		}()
		h.ServeICAP(w, ir)
	}()
	hd := <-w.heads
	if hd.err != nil {
		pr.Close()
		return nil, hd.err
	}
	res := &Result{Code: hd.code, Header: w.header.Clone()}
	switch {
	case hd.code == icap.StatusNoContent:
		pr.Close()
		return res, nil
	case hd.code != icap.StatusOK:
		pr.Close()
		return nil, fmt.Errorf("icap handler %s answered status %d", service, hd.code)
	}
	var out io.ReadCloser = http.NoBody
	if hd.hasBody {
		out = pr
	} else {
		pr.Close()
	}
	switch m := hd.msg.(type) {
	case *http.Request:
		if resp != nil {
			out.Close()
			return nil, fmt.Errorf("icap handler %s answered a request to RESPMOD", service)
		}
		m.Body = out
		res.Msg = m
	case *http.Response:
		m.Body = out
		if m.Request == nil {
			m.Request = req
		}
		res.Msg = m
	default:
		out.Close()
		return nil, fmt.Errorf("icap handler %s answered 200 without a message (%T)", service, hd.msg)
	}
	return res, nil
}

type head struct {
	code    int
	msg     any
	hasBody bool
	err     error
}

// pipeWriter is the icap.ResponseWriter of ServeInProcess: the head goes
// to a channel, the body into a pipe.
type pipeWriter struct {
	header  http.Header
	trailer http.Header
	once    sync.Once
	heads   chan head
	hasBody bool
	code    int // the ICAP status answered
	pw      *io.PipeWriter
}

func (w *pipeWriter) answer(h head) {
	w.once.Do(func() {
		w.hasBody, w.code = h.hasBody, h.code
		w.heads <- h
	})
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int, msg any, hasBody bool) {
	w.answer(head{code: code, msg: msg, hasBody: hasBody})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.answer(head{code: icap.StatusOK, hasBody: true})
	if !w.hasBody {
		return 0, icap.ErrBodyNotAllowed
	}
	return w.pw.Write(p)
}

func (w *pipeWriter) Trailer() http.Header {
	if w.trailer == nil {
		w.trailer = make(http.Header)
	}
	return w.trailer
}

// UseOriginalBody is never asked for: ServeInProcess does not allow 206.
func (w *pipeWriter) UseOriginalBody(int64) {}

var _ icap.ResponseWriter = (*pipeWriter)(nil)
