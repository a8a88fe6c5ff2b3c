package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
)

// bodyReader is a request body with Len, so that the client writes small
// bodies inline, and WriteTo, so that large ones are copied without an
// intermediate buffer.
type bodyReader struct{ *bytes.Reader }

func (bodyReader) Close() error { return nil }

// template builds the request every worker copies: the encapsulated HTTP
// headers are shared read-only, only the body reader is per request.
func template(o options, body []byte) (*icap.Request, error) {
	var hreq *http.Request
	var hresp *http.Response
	switch o.method {
	case icap.MethodREQMOD:
		hreq = &http.Request{
			Method: "POST", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "bench.test",
			Header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {strconv.Itoa(len(body))}},
		}
		hreq.URL, _ = hreq.URL.Parse("http://bench.test/upload")
	case icap.MethodRESPMOD:
		hreq = &http.Request{Method: "GET", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "bench.test", Header: http.Header{}}
		hreq.URL, _ = hreq.URL.Parse("http://bench.test/file")
		hresp = &http.Response{
			StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {strconv.Itoa(len(body))}},
		}
	}
	req, err := icap.NewRequest(o.method, o.url(), hreq, hresp)
	if err != nil {
		return nil, err
	}
	req.Preview = o.preview
	req.Allow204, req.Allow206 = o.allow204, o.allow206
	return req, nil
}

// run drives the closed loop and merges the workers' stats.
func run(ctx context.Context, o options, body []byte) (*Report, error) {
	tmpl, err := template(o, body)
	if err != nil {
		return nil, err
	}
	var issued atomic.Int64
	var deadline time.Time // set once the raw workers have connected
	more := func() bool {
		if ctx.Err() != nil {
			return false
		}
		if o.n > 0 {
			return issued.Add(1) <= o.n
		}
		return time.Now().Before(deadline)
	}
	raw := !o.tls && !o.client
	var w wire
	var devNull, file *os.File
	if raw {
		w = buildWire(o, body)
		if devNull, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			return nil, err
		}
		defer devNull.Close()
		if w.needsFile() {
			if file, err = bodyFile(body); err != nil {
				return nil, err
			}
			defer file.Close()
		}
	}
	ws := make([]*workerStats, o.c)
	var wg, ready sync.WaitGroup
	go1 := make(chan struct{})
	for i := range ws {
		ws[i] = newWorkerStats()
		wg.Add(1)
		ready.Add(1)
		go func(st *workerStats) {
			defer wg.Done()
			if raw {
				// Connect first, then wait for the others: the run
				// measures transactions, not a burst of 256 handshakes.
				rc, err := dialRaw(ctx, o, devNull, file)
				if err != nil {
					st.fail(err)
				}
				ready.Done()
				<-go1
				rawLoop(ctx, o, &w, rc, devNull, file, st, more)
				return
			}
			ready.Done()
			<-go1
			cl := &icap.Client{MaxIdleConnsPerHost: 1, Timeout: o.timeout, TLSConfig: o.tlsConfig()}
			defer cl.CloseIdleConnections()
			for more() {
				one(ctx, cl, tmpl, body, st)
			}
		}(ws[i])
	}
	ready.Wait()
	start := time.Now()
	deadline = start.Add(o.d)
	close(go1)
	wg.Wait()
	rep := &Report{
		Addr: o.addr, Service: o.service, Method: o.method, Concurrency: o.c,
		BodySize: int64(len(body)), Preview: o.preview, Allow204: o.allow204,
	}
	merge(rep, ws, time.Since(start))
	return rep, nil
}

// rawLoop runs one worker's transactions with the raw client (raw.go) on
// one persistent connection, redialled after an error or a close.
func rawLoop(ctx context.Context, o options, w *wire, rc *rawConn, devNull, file *os.File, st *workerStats, more func() bool) {
	defer func() {
		if rc != nil {
			rc.close()
		}
	}()
	for more() {
		t0 := time.Now()
		if rc == nil {
			var err error
			if rc, err = dialRaw(ctx, o, devNull, file); err != nil {
				st.fail(err)
				continue
			}
		}
		resp, sent, err := rc.transact(w)
		if err != nil {
			st.fail(err)
			rc.close()
			rc = nil
			continue
		}
		st.latencies = append(st.latencies, time.Since(t0))
		st.status[resp.status]++
		st.bytesIn += resp.body
		st.bytesOut += int64(sent)
		if resp.close {
			rc.close()
			rc = nil
		}
	}
}

// one sends one request and reads the whole response.
func one(ctx context.Context, cl *icap.Client, tmpl *icap.Request, body []byte, st *workerStats) {
	req := *tmpl
	var br *bytes.Reader
	if body != nil {
		br = bytes.NewReader(body)
		req.Body = bodyReader{br}
	}
	t0 := time.Now()
	resp, err := cl.Do(req.WithContext(ctx))
	if err != nil {
		st.fail(err)
		return
	}
	n, err := discard(resp.Body)
	resp.Body.Close()
	if err != nil {
		st.fail(err)
		return
	}
	st.latencies = append(st.latencies, time.Since(t0))
	st.status[resp.StatusCode]++
	st.bytesIn += n
	if br != nil {
		// What the client read of the body: all of it, or the preview
		// (plus one byte) when the server answered within the preview.
		st.bytesOut += int64(len(body) - br.Len())
	}
}

func (st *workerStats) fail(err error) {
	st.errors++
	st.lastErr = err
}

// holdIdle opens o.idle connections, each after one OPTIONS transaction
// so that the server has fully accepted it, prints one line, and holds
// them until ctx is done or o.d has passed.
func holdIdle(ctx context.Context, o options, out io.Writer) error {
	url := o.url()
	clients := make([]*icap.Client, o.idle)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(64, o.idle) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.idle) || ctx.Err() != nil {
					return
				}
				cl := &icap.Client{MaxIdleConnsPerHost: 1, Timeout: o.timeout, TLSConfig: o.tlsConfig()}
				resp, err := cl.Options(ctx, url)
				if err == nil {
					_, err = discard(resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				clients[i] = cl
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.CloseIdleConnections()
			}
		}
	}()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(out, "open %d idle connections to %s\n", o.idle, url)
	t := time.NewTimer(o.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}
