// Package blocklist is the block-list filter: it matches a request's host
// against a set of domains (domain-suffix matching) and its URL against a
// list of glob patterns.
//
// Domains come from the policy itself (hosts) or from files (files) in
// either of the two common formats, mixed freely:
//
//	# a comment; blank lines are ignored
//	ads.example.com             # one domain per line
//	0.0.0.0 tracker.example.net # hosts-file format: address, then names
//
// An entry blocks the domain and every subdomain: "example.com" matches
// "example.com" and "a.b.example.com" but not "badexample.com". A leading
// "." or "*." is accepted and means the same. Hosts-file boilerplate
// ("localhost", "broadcasthost", ...) is skipped.
package blocklist

import (
	"bytes"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/edgeadapt/edgeadapt/filters"
)

// DefaultMaxEntries caps the number of domains a List holds when
// List.MaxEntries is zero.
const DefaultMaxEntries = 4 << 20

// DefaultMaxLineBytes caps one line of a list file.
const DefaultMaxLineBytes = 4 << 10

// List is the block-list filter. Fill the exported fields (from TOML or
// by hand), then call Validate, which loads the files.
type List struct {
	// Hosts are domains given inline.
	Hosts []string `toml:"hosts"`
	// Files are list files, one domain per line or hosts-file format.
	Files []string `toml:"files"`
	// URLs are glob patterns (see filters.Glob) matched against
	// "host/path" of the request URL, without scheme, port or query,
	// e.g. "example.com/ads/*".
	URLs []string `toml:"urls"`
	// MaxEntries caps the number of domains loaded; more is an error.
	// Zero means DefaultMaxEntries.
	MaxEntries int `toml:"max_entries"`

	set  map[string]struct{}
	urls []*filters.Glob
}

// skipNames are names hosts files list for the local machine, never
// domains to block.
var skipNames = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "local": true,
	"broadcasthost": true, "ip6-localhost": true, "ip6-loopback": true,
	"ip6-localnet": true, "ip6-mcastprefix": true, "ip6-allnodes": true,
	"ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true,
}

// Validate loads the files, checks every entry and builds the tables.
// A malformed entry is an error naming the file and line.
func (l *List) Validate() error {
	if l.MaxEntries < 0 {
		return fmt.Errorf("blocklist: max_entries must be >= 0, got %d", l.MaxEntries)
	}
	l.set = make(map[string]struct{}, len(l.Hosts))
	for i, h := range l.Hosts {
		if err := l.add(h); err != nil {
			return fmt.Errorf("blocklist: hosts[%d]: %w", i, err)
		}
	}
	for _, f := range l.Files {
		if err := l.loadFile(f); err != nil {
			return err
		}
	}
	l.urls = l.urls[:0]
	for i, p := range l.URLs {
		g, err := filters.CompileGlob(p)
		if err != nil {
			return fmt.Errorf("blocklist: urls[%d]: %w", i, err)
		}
		l.urls = append(l.urls, g)
	}
	return nil
}

func (l *List) maxEntries() int {
	if l.MaxEntries == 0 {
		return DefaultMaxEntries
	}
	return l.MaxEntries
}

// loadFile reads a list file. The file is read whole and each domain is
// kept as a substring of it, so a million entries cost one allocation for
// the text plus the map, not one per entry.
func (l *List) loadFile(name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("blocklist: %w", err)
	}
	text := string(b)
	if len(l.set) == 0 {
		// Size the map once: about one entry per line.
		l.set = make(map[string]struct{}, bytes.Count(b, []byte{'\n'})+len(l.Hosts))
	}
	for lineNo := 1; text != ""; lineNo++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if len(line) > DefaultMaxLineBytes {
			return fmt.Errorf("blocklist: %s:%d: line longer than %d bytes", name, lineNo, DefaultMaxLineBytes)
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		// Fields without allocating: the first may be an address
		// (hosts-file format), the others are names.
		first := true
		for {
			f, rest := nextField(line)
			if f == "" {
				break
			}
			line = rest
			if first {
				first = false
				if _, err := netip.ParseAddr(f); err == nil {
					continue
				}
			}
			if skipNames[f] {
				continue
			}
			if err := l.add(f); err != nil {
				return fmt.Errorf("blocklist: %s:%d: %w", name, lineNo, err)
			}
		}
	}
	return nil
}

// nextField returns the first white-space separated field of s and what
// follows it.
func nextField(s string) (field, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// add checks and inserts one domain, keeping d itself when it is already
// canonical.
func (l *List) add(d string) error {
	d = strings.TrimPrefix(strings.TrimPrefix(d, "*"), ".")
	d = strings.TrimSuffix(d, ".")
	if err := checkDomain(d); err != nil {
		return err
	}
	if hasUpper(d) {
		d = strings.ToLower(d)
	}
	// One hash operation per entry: insert, then undo if over the limit.
	l.set[d] = struct{}{}
	if len(l.set) > l.maxEntries() {
		delete(l.set, d)
		return fmt.Errorf("more than max_entries (%d) domains", l.maxEntries())
	}
	return nil
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// checkDomain accepts DNS names made of letters, digits, '-' and '_'
// labels of 1 to 63 bytes; 253 bytes at most.
func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("invalid domain %q: length must be 1 to 253", d)
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return fmt.Errorf("invalid domain %q: empty label", d)
			}
			label = 0
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("invalid domain %q: character %q", d, c)
		}
		label++
		if label > 63 {
			return fmt.Errorf("invalid domain %q: label longer than 63 bytes", d)
		}
	}
	if label == 0 {
		return fmt.Errorf("invalid domain %q: empty label", d) // "a..": one trailing dot is stripped, not two
	}
	return nil
}

// Len returns the number of domains loaded.
func (l *List) Len() int { return len(l.set) }

// MatchHost reports whether host, or a domain it belongs to, is listed,
// and returns the listed entry. host should be lower case, without port;
// a trailing dot is ignored. It does not allocate for lower-case input.
func (l *List) MatchHost(host string) (entry string, ok bool) {
	if len(l.set) == 0 || host == "" {
		return "", false
	}
	host = strings.TrimSuffix(host, ".")
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	for h := host; ; {
		if _, ok := l.set[h]; ok {
			return h, true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return "", false
		}
		h = h[i+1:]
	}
}

// MatchURL reports whether u is blocked, by its host or by a URL pattern,
// and returns the entry or pattern that matched.
func (l *List) MatchURL(u *url.URL) (entry string, ok bool) {
	host := strings.ToLower(u.Hostname())
	if e, ok := l.MatchHost(host); ok {
		return e, true
	}
	if len(l.urls) == 0 {
		return "", false
	}
	s := host + u.EscapedPath()
	for _, g := range l.urls {
		if g.Match(s) {
			return g.String(), true
		}
	}
	return "", false
}

// Close releases the tables; the List matches nothing afterwards.
func (l *List) Close() error {
	l.set, l.urls = nil, nil
	return nil
}

var (
	_ filters.Validator = (*List)(nil)
	_ filters.Closer    = (*List)(nil)
)
