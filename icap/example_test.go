package icap_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/icap/icaptest"
)

// ExampleServer runs an ICAP server with an echo service on a loopback
// port, asks it for the service's OPTIONS and shuts it down gracefully.
func ExampleServer() {
	mux := icap.NewServeMux()
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {
		icap.NoModification(w, r) // 204 when allowed, else an unchanged echo
	}, icap.ServiceOptions{Service: "echo", Methods: []string{icap.MethodRESPMOD}, Allow204: true})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &icap.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)

	var client icap.Client
	resp, err := client.Options(context.Background(), "icap://"+ln.Addr().String()+"/echo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, resp.Header.Get("Methods"), resp.Header.Get("Allow"), resp.Header.Get("Preview"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client.CloseIdleConnections()
	fmt.Println(srv.Shutdown(ctx))
	// Output:
	// 200 RESPMOD 204 1024
	// <nil>
}

// ExampleServeMux registers a RESPMOD service that rewrites text bodies
// while streaming them, and leaves everything else unchanged.
func ExampleServeMux() {
	mux := icap.NewServeMux()
	mux.HandleFunc("/upper", func(w icap.ResponseWriter, r *icap.Request) {
		if r.Response == nil || !strings.HasPrefix(r.Response.Header.Get("Content-Type"), "text/") {
			icap.NoModification(w, r)
			return
		}
		r.Response.Header.Del("Content-Length") // the length may change
		w.WriteHeader(icap.StatusOK, r.Response, true)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			w.Write(bytes.ToUpper(buf[:n]))
			if err != nil {
				return
			}
		}
	}, icap.ServiceOptions{Methods: []string{icap.MethodRESPMOD}, Allow204: true})

	// Call it directly with a recorder, as a unit test would.
	resp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", Header: http.Header{"Content-Type": {"text/plain"}}}
	req := icaptest.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1/upper", nil, resp, strings.NewReader("hello"))
	rec := icaptest.NewRecorder()
	mux.ServeICAP(rec, req)
	fmt.Println(rec.Code, rec.Body.String(), rec.HeaderMap.Get("ISTag") != "")
	// Output: 200 HELLO true
}

// ExampleClient sends a RESPMOD request the way Squid does: a preview of
// 1024 bytes and Allow: 204.
func ExampleClient() {
	mux := icap.NewServeMux()
	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {
		icap.NoModification(w, r)
	}, icap.ServiceOptions{Allow204: true})
	srv := icaptest.NewServer(mux)
	defer srv.Close()

	body := strings.Repeat("x", 10000)
	httpResp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1",
		Header: http.Header{"Content-Type": {"text/plain"}},
		Body:   io.NopCloser(strings.NewReader(body))}
	req, err := icap.NewRequest(icap.MethodRESPMOD, srv.URL+"/echo", nil, httpResp)
	if err != nil {
		log.Fatal(err)
	}
	req.Preview = 1024
	req.Allow204 = true
	resp, err := srv.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, "(no modification: use the original message)")
	// Output: 204 (no modification: use the original message)
}

// ExampleICAPTrailerWriter sends a scan verdict, known only once the whole
// body has been read, as an ICAP trailer after the echoed message; the
// client sent the body's digest as its own ICAP trailer.
func ExampleICAPTrailerWriter() {
	mux := icap.NewServeMux()
	mux.HandleFunc("/scan", func(w icap.ResponseWriter, r *icap.Request) {
		tw := w.(icap.ICAPTrailerWriter)
		tw.ICAPTrailer()["X-Verdict"] = nil // announced in the response head
		w.WriteHeader(icap.StatusOK, r.Response, true)
		n, _ := io.Copy(w, r.Body) // r.ICAPTrailer is filled once the body is read
		tw.ICAPTrailer().Set("X-Verdict", fmt.Sprintf("clean, %d bytes, digest %s", n, r.ICAPTrailer.Get("X-Digest")))
	}, icap.ServiceOptions{Methods: []string{icap.MethodRESPMOD}, AllowTrailers: true})
	srv := icaptest.NewServer(mux)
	defer srv.Close()

	httpResp := &http.Response{StatusCode: 200, Proto: "HTTP/1.1", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("hello"))}
	req, err := icap.NewRequest(icap.MethodRESPMOD, srv.URL+"/scan", nil, httpResp)
	if err != nil {
		log.Fatal(err)
	}
	req.AllowTrailers = true
	req.ICAPTrailer = http.Header{"X-Digest": {"5d41402a"}}
	resp, err := srv.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body) // the ICAP trailer follows the body
	fmt.Printf("%s: %s\n", body, resp.ICAPTrailer.Get("X-Verdict"))
	// Output: hello: clean, 5 bytes, digest 5d41402a
}
