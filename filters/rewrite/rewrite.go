// Package rewrite is the URL-rewriting filter: it changes the scheme,
// host, path prefix or query of a request's URL in REQMOD, so the origin
// request goes somewhere else (a local mirror, a plain-HTTP cache) while
// the client keeps the URL it asked for. It is a rewrite, not a redirect:
// the client is not told.
package rewrite

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/edgeadapt/edgeadapt/filters"
)

// URL rewrites a request URL. The zero value changes nothing. Parts apply
// in the order of the fields.
type URL struct {
	// Scheme replaces the URL scheme: "http" or "https".
	Scheme string `toml:"scheme"`
	// Host replaces the URL host (and the Host header): "host" or
	// "host:port".
	Host string `toml:"host"`
	// FromPrefix and ToPrefix replace a leading path prefix: a path
	// starting with FromPrefix gets ToPrefix instead. Both start with "/".
	FromPrefix string `toml:"from_prefix"`
	ToPrefix   string `toml:"to_prefix"`
	// StripQuery drops the query string.
	StripQuery bool `toml:"strip_query"`
}

// Validate checks the parts.
func (u *URL) Validate() error {
	switch u.Scheme {
	case "", "http", "https":
	default:
		return fmt.Errorf("rewrite: scheme %q: want http or https", u.Scheme)
	}
	if u.Host != "" {
		host := u.Host
		if h, port, err := net.SplitHostPort(u.Host); err == nil {
			host = h
			if port == "" || strings.Trim(port, "0123456789") != "" {
				return fmt.Errorf("rewrite: host %q: bad port", u.Host)
			}
		}
		if host == "" || strings.ContainsAny(host, "/?#@ \t\r\n") || strings.ToLower(host) != host {
			return fmt.Errorf("rewrite: host %q: want a lower-case host[:port]", u.Host)
		}
	}
	if (u.FromPrefix == "") != (u.ToPrefix == "") {
		return fmt.Errorf("rewrite: from_prefix and to_prefix go together")
	}
	for _, p := range []string{u.FromPrefix, u.ToPrefix} {
		if p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t\r\n")) {
			return fmt.Errorf("rewrite: prefix %q: want a path starting with /", p)
		}
	}
	return nil
}

// Empty reports whether u changes nothing.
func (u *URL) Empty() bool { return u == nil || *u == URL{} }

// Apply rewrites req.URL (and req.Host with Host) in place and reports
// whether anything changed. A nil *URL changes nothing.
func (u *URL) Apply(req *http.Request) bool {
	if u.Empty() || req.URL == nil {
		return false
	}
	before := req.URL.String()
	if u.Scheme != "" && req.URL.Scheme != "" {
		req.URL.Scheme = u.Scheme
	}
	if u.Host != "" {
		req.URL.Host = u.Host
		req.Host = u.Host
	}
	if u.FromPrefix != "" && strings.HasPrefix(req.URL.Path, u.FromPrefix) {
		req.URL.Path = u.ToPrefix + req.URL.Path[len(u.FromPrefix):]
		req.URL.RawPath = ""
	}
	if u.StripQuery {
		req.URL.RawQuery, req.URL.ForceQuery = "", false
	}
	return req.URL.String() != before
}

var _ filters.Validator = (*URL)(nil)
