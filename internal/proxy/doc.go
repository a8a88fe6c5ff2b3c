// Package proxy is icapd's HTTP forward proxy mode: a goproxy server that
// runs the same icap.Handlers as the ICAP services (/reqmod, /respmod) in
// process on each request and response, so that proxy mode and Squid
// mode share one adaptation code path. The proxy client's address is the
// handlers' X-Client-IP. CONNECT is tunnelled untouched (no interception).
// A handler that fails passes the original message and logs why.
//
// Listener wraps every accepted client connection in a congestion.Conn,
// so responses and CONNECT tunnels (goproxy hijacks the wrapped
// connection) are written under the window of the client host's
// macroflow, and in a Meter, which makes the proxy a SPAND "modified
// client": it turns each connection's TCP_INFO into performance reports
// (spand.Report, the client as the local host) for the in-process store
// or the spand daemon, and tells the congestion manager's predictor
// (internal/adapt.CM) how recently each host was written to.
package proxy
