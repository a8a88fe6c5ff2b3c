// Package proxy is icapd's HTTP forward proxy mode: a goproxy server that
// runs the same icap.Handlers as the ICAP services (/reqmod, /respmod) in
// process on each request and response, so that proxy mode and Squid
// mode share one adaptation code path. The proxy client's address is the
// handlers' X-Client-IP. CONNECT is tunnelled untouched (no interception).
// A handler that fails passes the original message and logs why.
package proxy
