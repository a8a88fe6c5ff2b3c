package policy

import (
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Service is the ICAP service a message came through.
type Service uint8

// The two ICAP adaptation services (RFC 3507 section 3).
const (
	ServiceAny Service = iota // only in rules: either service
	Reqmod
	Respmod
)

// String returns "reqmod", "respmod" or "any".
func (s Service) String() string {
	switch s {
	case Reqmod:
		return "reqmod"
	case Respmod:
		return "respmod"
	}
	return "any"
}

// ParseService parses "reqmod" or "respmod" (case-insensitive).
func ParseService(s string) (Service, bool) {
	switch strings.ToLower(s) {
	case "reqmod":
		return Reqmod, true
	case "respmod":
		return Respmod, true
	}
	return ServiceAny, false
}

// Message is the policy's view of one ICAP message: the HTTP request,
// and for RESPMOD the response head, plus what the ICAP client (Squid)
// said about the client. Build it with NewMessage; the policy never reads
// or keeps a body.
type Message struct {
	Service Service
	Method  string   // HTTP method, upper case
	URL     *url.URL // request URL; never nil after NewMessage
	Host    string   // URL host (or Host header), lower case, no port

	Header         http.Header // HTTP request header; never nil
	Status         int         // HTTP response status; 0 in REQMOD
	ResponseHeader http.Header // HTTP response header; nil in REQMOD

	// ContentType is the media type of the body the service would adapt
	// (the response's in RESPMOD, the request's in REQMOD), lower case,
	// without parameters; "" if absent.
	ContentType string
	// ContentLength is that body's length, -1 if unknown.
	ContentLength int64

	ClientIP netip.Addr // from X-Client-IP; invalid if absent
	User     string     // decoded X-Authenticated-User, e.g. "ldap://example.com/alice"
}

// NewMessage builds the Message for an ICAP request. req is the
// encapsulated HTTP request (required: in RESPMOD, the one Squid sent
// along); resp is the encapsulated response (nil in REQMOD); icapHeader
// is the ICAP request's header, where Squid puts X-Client-IP and
// X-Authenticated-User (may be nil). Nothing is copied: the Message
// aliases the headers, so build it and decide before changing them.
func NewMessage(svc Service, req *http.Request, resp *http.Response, icapHeader http.Header) *Message {
	m := &Message{Service: svc, ContentLength: -1}
	if req != nil {
		m.Method = strings.ToUpper(req.Method)
		m.URL = req.URL
		m.Header = req.Header
		host := req.Host
		if req.URL != nil && req.URL.Host != "" {
			host = req.URL.Host
		}
		m.Host = canonicalHost(host)
	}
	if m.URL == nil {
		m.URL = &url.URL{}
	}
	if m.Header == nil {
		m.Header = http.Header{}
	}
	bodyHeader, bodyLen := m.Header, int64(-1)
	if req != nil {
		bodyLen = req.ContentLength
	}
	if resp != nil {
		m.Status = resp.StatusCode
		m.ResponseHeader = resp.Header
		if m.ResponseHeader == nil {
			m.ResponseHeader = http.Header{}
		}
		bodyHeader, bodyLen = m.ResponseHeader, resp.ContentLength
	}
	m.ContentType = mediaType(bodyHeader.Get("Content-Type"))
	// The header is authoritative; a struct built by hand may only have
	// the field, where 0 is indistinguishable from "unset".
	if n, err := strconv.ParseInt(bodyHeader.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		m.ContentLength = n
	} else if bodyLen > 0 {
		m.ContentLength = bodyLen
	}
	if icapHeader != nil {
		if a, err := netip.ParseAddr(strings.TrimSpace(icapHeader.Get("X-Client-IP"))); err == nil {
			m.ClientIP = a.Unmap()
		}
		m.User = DecodeUser(icapHeader.Get("X-Authenticated-User"))
	}
	return m
}

// DecodeUser decodes an X-Authenticated-User value: base64 of a URI such
// as "ldap://example.com/alice" (Squid's icap_send_client_username with
// icap_client_username_encode on). A value that is not base64 is taken
// as is, for ICAP clients that send it in clear.
func DecodeUser(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		return string(b)
	}
	return v
}

// userName returns the last path element of a user URI, the bare name
// ("alice" of "ldap://example.com/alice").
func userName(u string) string {
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[i+1:]
	}
	return u
}

// canonicalHost lower-cases host and strips a port and a trailing dot.
func canonicalHost(host string) string {
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	} else if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[1:i]
		}
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// mediaType returns the lower-case media type of a Content-Type value.
func mediaType(v string) string {
	if v == "" {
		return ""
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.ToLower(strings.TrimSpace(v))
	if !strings.Contains(v, "/") {
		return ""
	}
	return v
}
