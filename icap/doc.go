// Package icap implements the Internet Content Adaptation Protocol, ICAP/1.0
// (RFC 3507, with the Measurement Factory errata), server and client, in the
// style of net/http.
//
// # Server
//
// A Server reads ICAP requests on persistent connections and passes each to
// a Handler:
//
//	mux := icap.NewServeMux()
//	mux.HandleFunc("/echo", func(w icap.ResponseWriter, r *icap.Request) {
//		icap.NoModification(w, r) // 204, 206 or a streamed echo
//	}, icap.ServiceOptions{Service: "echo", Allow204: true, Allow206: true})
//	srv := &icap.Server{Addr: "127.0.0.1:1344", Handler: mux}
//	log.Fatal(srv.ListenAndServe())
//
// The zero Server is valid; every limit and timeout falls back to a
// Default... constant: MaxHeaderBytes (ICAP header) and MaxHTTPHeaderBytes
// (each encapsulated header) are answered 400 when exceeded;
// ReadHeaderTimeout bounds reading a request's headers (408), ReadTimeout
// and WriteTimeout bound each read or write of a body (inactivity, so that
// long streams work), IdleTimeout bounds the wait for the next request;
// MaxConns connections at most (503 beyond); MaxDrainBytes of unread body
// after an early response (else the connection closes).
//
// Shutdown stops gracefully, as net/http's does: listeners and idle
// connections close at once; in-flight transactions finish with
// "Connection: close" in their responses, then their connections close; a
// request already read (pipelined, or arriving as the drain begins) is
// served the same way rather than answered 503, so a client either gets
// a full answer or a connection closed before any response byte, which
// Squid retries (reused connection) or bypasses. Observer sees every transaction (for access logs and metrics),
// including the errors the server answers itself; ConnState sees every
// connection (StateNew once per accepted connection).
//
// Memory: an idle persistent connection holds no buffers (the server waits
// for readability with MSG_PEEK and takes pooled 32 KB read and write
// buffers only for a transaction), about 7 KB in all
// (BenchmarkIdleConnMemory). Bodies are streamed: a 1 GiB RESPMOD echo
// runs in a few MB of heap (TestStreamingFlatMemory). On plain TCP, Echo
// (any io.Copy(w, r.Body)) sends request chunks larger than the read
// buffer back with splice(2), socket to socket, so their data never
// enters user space; each response chunk keeps the request chunk's size.
//
// # Requests
//
// A Request carries the ICAP method, URL and header, the encapsulated HTTP
// message(s) parsed as HTTP/1.1 (Request.Request, Request.Response; hop-by-hop
// headers removed), and the encapsulated body as a streaming io.Reader
// (Request.Body, also set as the encapsulated message's Body). The
// Encapsulated header is validated: entity order per method, offsets
// starting at 0 and increasing, and each header section exactly as long as
// its offsets say; anything else is answered 400 without waiting for more
// data.
//
// Preview (RFC 3507 section 4.5): Request.Preview is the preview size (-1
// without). Reading Body past the preview makes the server send
// "100 Continue" and go on reading; after "0; ieof" the body simply ends.
// While in preview (Request.InPreview) a 204 is always allowed. If the
// handler answers without reading on, no 100 is sent.
//
// # Responses
//
// ResponseWriter.WriteHeader(code, msg, hasBody) writes the ICAP status, the
// ICAP header (ISTag and Date added), Encapsulated computed from msg (an
// *http.Request, an *http.Response or nil) and the encapsulated header; Write
// streams the body, one chunk per call; the last chunk (with trailers when
// the client sent "Allow: trailers") is written when the handler returns.
// Output is flushed when the handler returns or when the server is about to
// wait for input, not per chunk.
//
// A 204 is only sent when allowed (Request.Can204); otherwise the message is
// echoed unchanged. 206 Partial Content (the ICAP Partial Content extension,
// Squid's icap_206_enable) ends with "0; use-original-body=N"
// (ResponseWriter.UseOriginalBody) and needs "Allow: 206". NoModification
// picks 204, then 206, then a full echo; Echo always echoes. A handler that
// returns without writing gets NoModification: adaptation fails open.
//
// ICAP trailers (draft-rousskov-icap-trailers, which lifts the RFC 3507
// errata's ban on trailers): a service announces "Allow: trailers" in its
// OPTIONS answer (ServiceOptions.AllowTrailers). A client then may send a
// "Trailer" ICAP header and, after the whole encapsulated message (after
// the last chunk and its HTTP trailer, or after the encapsulated headers
// of a message without body), ICAP trailer fields ending with an empty
// line; the server exposes them as Request.ICAPTrailer once the body is
// read, and reads (or drains) them even when the handler does not, so the
// connection stays in sync. A handler sends its own ICAP trailer through
// ICAPTrailerWriter when the request carried "Allow: trailers" (Squid 5
// always sends it): the names are announced in the response head
// ("Trailer", with "Allow: trailers", without which Squid fails the
// transaction), the values written after the message; Squid 5.7 accepts
// them (TestSquidICAPTrailer). The Client sends Request.ICAPTrailer and reads
// Response.ICAPTrailer. The HTTP trailer of the encapsulated body
// (Request.Trailer, ResponseWriter.Trailer) is a separate thing.
//
// Known Squid bug (5.7, unchanged in Squid 8.0 master's ModXact.cc): with a
// response body larger than Squid's adapted body pipe (64 KB), Squid may
// not read an ICAP trailer that reaches it after the last chunk while the
// pipe is full (ModXact::noteMoreBodySpaceAvailable parses the last
// chunk and enters the trailer state without scheduling another read).
// The HTTP response is complete, but the ICAP transaction stays open on
// its connection until icap_io_timeout, and Squid opens new connections
// meanwhile. The server cannot prevent it (Squid's read boundaries decide),
// so with Squid send ICAP trailers only with small bodies or accept the
// lingering connections. TestSquidICAPTrailerStall reproduces it
// (SQUID_TRAILER_STALL=1).
//
// Early responses: a handler may answer before reading the whole body; the
// server then reads and discards the rest (up to Server.MaxDrainBytes, else
// it closes the connection), so the connection stays in sync.
//
// Losing nothing: if the request body breaks off (timeout, malformed chunk,
// client gone) the response is cut without its last chunk, so the client
// cannot take a truncated body for a complete one; and if a handler asks
// for a 204 or 206 the client does not allow after it has consumed part of
// the body, the answer is 500 rather than a truncated echo. A service with
// ServiceOptions.Via adds "Via: 1.0 <Via>" to the messages it modifies
// (RFC 3507 sections 4.8.3, 4.9.3). Hop-by-hop headers (Connection and the
// fields it names, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade) are removed from encapsulated messages when
// parsed and when written.
//
// Ownership: the Request, its Body and the ResponseWriter belong to the
// server and are valid only until ServeICAP returns. The server reuses the
// Request, its header maps and the encapsulated http.Request and
// http.Response (with theirs) for later requests, so that a transaction
// allocates little more than its header strings: copy (Header.Clone)
// what a goroutine outliving the handler needs.
//
// # Services and OPTIONS
//
// ServeMux routes by the ICAP URI path. Each registration's ServiceOptions
// generate its OPTIONS answer: Methods, ISTag (quoted, at most 32 bytes,
// derived from a hash of the options unless set, so it changes with the
// configuration; SetISTag changes it), Service, Service-ID and ServiceId,
// Max-Connections, Options-TTL, Allow, Preview, Transfer-Preview/Ignore/
// Complete, X-Include, Encapsulated: null-body=0 and Date. The fields are
// serialised once per registration (sorted); only Date is added per
// response. Unknown services
// get 404 and methods a service does not offer get 405.
//
// # Errors
//
// StatusForError maps parse errors to status codes: 400 malformed (the
// reason is logged; ErrMalformed, ErrBadEncapsulated, ErrHeaderTooLarge),
// 408 timeout while reading a request, 501 unknown method, 505 version
// other than ICAP/1.0. The server also answers 404/405 (ServeMux), 500 (a
// handler panicked before writing) and 503 (over MaxConns). Every response carries an ISTag; every error answer (>= 400)
// carries "Connection: close" and closes the connection, as c-icap does. Parse errors are *ProtocolError values wrapping the
// sentinels.
//
// # Client
//
// Client sends requests over a pool of persistent connections:
//
//	req, _ := icap.NewRequest(icap.MethodRESPMOD, "icap://127.0.0.1:1344/echo", httpReq, httpResp)
//	req.Preview = 1024
//	req.Allow204 = true
//	resp, err := client.Do(req)
//	// resp.StatusCode, resp.Response, resp.Body (streaming; read to EOF or Close)
//
// It handles previews (ieof when the body fits), 100 Continue, early
// responses and 206, and writes large bodies concurrently with reading the
// response. Canceling the request's context interrupts a transaction in
// progress; the registration is kept across requests with the same
// context, so a load generator pays nothing per request for it. A pooled
// connection idle for more than a second is checked for a close by the
// server before reuse. Timeout bounds every read and write (inactivity).
//
// Package icaptest has a ResponseRecorder and a loopback Server for tests.
package icap
