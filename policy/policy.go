package policy

import (
	"math"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/filters/blocklist"
	"github.com/edgeadapt/edgeadapt/filters/blockpage"
)

// Policy is a loaded, validated policy.toml. It is immutable and safe for
// concurrent use; a reload builds a new Policy (see Holder).
type Policy struct {
	// File is the path the policy was loaded from ("" for Parse input
	// without a name).
	File string
	// Hash is the SHA-256 of the file's content.
	Hash [32]byte
	// Version identifies this policy in ISTag headers and logs: at most
	// 32 bytes, derived from the generation and the content hash. Load
	// gives generation 0; Holder counts successful reloads.
	Version string
	// Warnings are problems that do not stop the policy from loading.
	Warnings []string

	rules      []*rule
	hints      bool
	saveData   string
	minReports int
	maxAge     time.Duration
	classes    []class
	profiles   map[string]*Profile
	lists      map[string]*blocklist.List
	page       *blockpage.Page

	// Index: rule orders, ascending, by the host they name (exact or
	// domain) and, for rules naming no host, by service. Decide merges
	// the few lists a message's host selects instead of trying every rule.
	exact   map[string][]int32
	suffix  map[string][]int32
	segment map[string][]int32 // host-less rules by the first path segment every path pattern fixes
	generic [3][]int32
}

// maxIndexLists bounds the lists merged per message: the generic list,
// the exact host and one per domain level. Deeper hosts are decided by a
// linear scan, with the same result.
const maxIndexLists = 12

// Rules returns the names of the rules in evaluation order.
func (p *Policy) Rules() []string {
	out := make([]string, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.name
	}
	return out
}

// Profile returns the named transcoding profile, or nil.
func (p *Policy) Profile(name string) *Profile { return p.profiles[name] }

// Close releases what the policy's filters hold (block list tables). Call
// it when the policy is no longer used, e.g. after a reload; decisions
// already made stay valid.
func (p *Policy) Close() error {
	for _, l := range p.lists {
		l.Close()
	}
	return nil
}

func (p *Policy) buildIndex() {
	p.exact = map[string][]int32{}
	p.suffix = map[string][]int32{}
	p.segment = map[string][]int32{}
	for i, r := range p.rules {
		o := int32(i)
		if segs := r.pathSegments(); r.hosts == nil && segs != nil {
			for _, s := range segs {
				if l := p.segment[s]; len(l) == 0 || l[len(l)-1] != o {
					p.segment[s] = append(l, o)
				}
			}
			continue
		}
		if r.hosts == nil {
			for _, s := range []Service{Reqmod, Respmod} {
				if r.service == ServiceAny || r.service == s {
					p.generic[s] = append(p.generic[s], o)
				}
			}
			continue
		}
		for _, h := range r.hosts {
			m := p.exact
			if h.suffix {
				m = p.suffix
			}
			if l := m[h.name]; len(l) == 0 || l[len(l)-1] != o {
				m[h.name] = append(l, o)
			}
		}
	}
}

// first returns the first rule matching e.m, or nil. It merges the index
// lists for the message's host in rule order, so the result is the one a
// linear scan gives.
func (p *Policy) first(e *env) *rule {
	var lists [maxIndexLists][]int32
	n := 0
	svc := e.m.Service
	if svc != Reqmod && svc != Respmod {
		return p.linear(e)
	}
	if l := p.generic[svc]; len(l) > 0 {
		lists[n] = l
		n++
	}
	if len(p.segment) > 0 {
		if l := p.segment[firstSegment(e.m.URL.Path)]; len(l) > 0 {
			lists[n] = l
			n++
		}
	}
	host := e.m.Host
	if host != "" {
		if l := p.exact[host]; len(l) > 0 {
			lists[n] = l
			n++
		}
		for h := host; ; {
			if l := p.suffix[h]; len(l) > 0 {
				if n == maxIndexLists {
					return p.linear(e)
				}
				lists[n] = l
				n++
			}
			i := strings.IndexByte(h, '.')
			if i < 0 {
				break
			}
			h = h[i+1:]
		}
	}
	for {
		best, head := -1, int32(math.MaxInt32)
		for i := 0; i < n; i++ {
			if len(lists[i]) > 0 && lists[i][0] < head {
				best, head = i, lists[i][0]
			}
		}
		if best < 0 {
			return nil
		}
		for i := 0; i < n; i++ {
			if len(lists[i]) > 0 && lists[i][0] == head {
				lists[i] = lists[i][1:]
			}
		}
		if r := p.rules[head]; r.matchOK(e) {
			return r
		}
	}
}

// pathSegments returns the first path segments ("/ads") a rule's path
// patterns fix, or nil if one of them does not fix one (e.g. "*.gif" or
// "/a*"), or the rule has no path condition.
func (r *rule) pathSegments() []string {
	if r.paths == nil {
		return nil
	}
	segs := make([]string, 0, len(r.paths))
	for _, g := range r.paths {
		pre := g.Prefix()
		if !strings.HasPrefix(pre, "/") {
			return nil
		}
		i := strings.IndexByte(pre[1:], '/')
		if i < 0 {
			if !g.Literal() {
				return nil // "/ad*": the segment is not fixed
			}
			segs = append(segs, pre) // "/robots.txt"
			continue
		}
		segs = append(segs, pre[:i+1])
	}
	return segs
}

// firstSegment returns "/a" of "/a/b/c" and "/a" of "/a".
func firstSegment(path string) string {
	if path == "" {
		return "/"
	}
	if i := strings.IndexByte(path[1:], '/'); i >= 0 {
		return path[:i+1]
	}
	return path
}

// linear tries every rule in order.
func (p *Policy) linear(e *env) *rule {
	for _, r := range p.rules {
		if r.matchOK(e) {
			return r
		}
	}
	return nil
}

func (r *rule) matchOK(e *env) bool {
	ok, _ := r.match(e)
	return ok
}
