package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/filters"
	"github.com/edgeadapt/edgeadapt/filters/blocklist"
	"github.com/edgeadapt/edgeadapt/filters/headers"
	"github.com/edgeadapt/edgeadapt/filters/rewrite"
)

// cond names one condition of a rule, for Explain and shadow errors.
type cond uint8

const (
	condNone cond = iota
	condService
	condMethod
	condHost
	condStatus
	condLength
	condContentType
	condPath
	condClient
	condUser
	condBlocklist
	condBandwidth
	condThroughput
	condRTT
)

var condKeys = [...]string{
	condNone:        "",
	condService:     "service",
	condMethod:      "method",
	condHost:        "host",
	condStatus:      "status",
	condLength:      "min_content_length/max_content_length",
	condContentType: "content_type",
	condPath:        "path",
	condClient:      "client",
	condUser:        "user",
	condBlocklist:   "blocklist",
	condBandwidth:   "bandwidth",
	condThroughput:  "min_throughput/max_throughput",
	condRTT:         "min_rtt/max_rtt",
}

func (c cond) String() string { return condKeys[c] }

// hostPat is one host condition: an exact name, or a domain and all its
// subdomains (written ".example.com").
type hostPat struct {
	name   string
	suffix bool
}

func (h hostPat) match(host string) bool {
	if !h.suffix {
		return host == h.name
	}
	return host == h.name || len(host) > len(h.name) && host[len(host)-len(h.name)-1] == '.' && host[len(host)-len(h.name):] == h.name
}

func (h hostPat) covers(o hostPat) bool {
	if h.suffix {
		return h.match(o.name)
	}
	return !o.suffix && o.name == h.name
}

func (h hostPat) String() string {
	if h.suffix {
		return "." + h.name
	}
	return h.name
}

// userPat matches the authenticated user: against the whole URI when the
// pattern contains "://", else against the bare user name.
type userPat struct {
	g    *filters.Glob
	full bool
}

// rule is a compiled [[rules]] entry. Zero-valued conditions are absent.
type rule struct {
	name     string
	key      string // "rules[N]", N its position in the file
	line     int
	order    int // position after sorting by priority
	priority int

	service  Service
	methods  []string
	hosts    []hostPat
	statuses []int
	hasLen   bool
	minLen   int64
	maxLen   int64 // -1: no upper bound
	ctypes   []string
	paths    []*filters.Glob
	clients  []netip.Prefix
	users    []userPat
	listName []string
	lists    []*blocklist.List
	classes  []string
	minTP    BitRate
	maxTP    BitRate
	minRTT   time.Duration
	maxRTT   time.Duration
	needNet  bool // a network condition is present

	action   Action
	status   int
	reason   string
	location string
	profile  *Profile
	reqHdr   *headers.Rules
	respHdr  *headers.Rules
	rewrite  *rewrite.URL
}

// env is the state of one decision: the message and, computed at most
// once and only if a rule needs it, the client's network.
type env struct {
	ctx     context.Context
	p       *Policy
	m       *Message
	pred    Predictor
	netDone bool
	ni      NetInfo
}

func (e *env) net() *NetInfo {
	if !e.netDone {
		e.ni = e.p.classify(e.ctx, e.m, e.pred)
		e.netDone = true
	}
	return &e.ni
}

// match reports whether r matches, or the first condition that failed.
// Conditions are tried cheapest first; the network ones, which may ask
// the predictor, come last.
func (r *rule) match(e *env) (bool, cond) {
	m := e.m
	if r.service != ServiceAny && r.service != m.Service {
		return false, condService
	}
	if r.methods != nil && !slices.Contains(r.methods, m.Method) {
		return false, condMethod
	}
	if r.hosts != nil && !r.matchHost(m.Host) {
		return false, condHost
	}
	if r.statuses != nil && !slices.Contains(r.statuses, m.Status) {
		return false, condStatus
	}
	if r.hasLen && (m.ContentLength < 0 || m.ContentLength < r.minLen || r.maxLen >= 0 && m.ContentLength > r.maxLen) {
		return false, condLength
	}
	if r.ctypes != nil && !r.matchType(m.ContentType) {
		return false, condContentType
	}
	if r.paths != nil && !r.matchPath(m.URL.Path) {
		return false, condPath
	}
	if r.clients != nil && !r.matchClient(m.ClientIP) {
		return false, condClient
	}
	if r.users != nil && !r.matchUser(m.User) {
		return false, condUser
	}
	if r.lists != nil && !r.matchLists(m) {
		return false, condBlocklist
	}
	if !r.needNet {
		return true, condNone
	}
	ni := e.net()
	if r.classes != nil && !slices.Contains(r.classes, ni.Class) {
		return false, condBandwidth
	}
	if (r.minTP > 0 || r.maxTP > 0) && (ni.Throughput == 0 || ni.Throughput < r.minTP || r.maxTP > 0 && ni.Throughput >= r.maxTP) {
		return false, condThroughput
	}
	if (r.minRTT > 0 || r.maxRTT > 0) && (ni.RTT == 0 || ni.RTT < r.minRTT || r.maxRTT > 0 && ni.RTT >= r.maxRTT) {
		return false, condRTT
	}
	return true, condNone
}

func (r *rule) matchHost(h string) bool {
	for _, p := range r.hosts {
		if p.match(h) {
			return true
		}
	}
	return false
}

func (r *rule) matchType(t string) bool {
	for _, p := range r.ctypes {
		if mediaMatch(p, t) {
			return true
		}
	}
	return false
}

func (r *rule) matchPath(path string) bool {
	if path == "" {
		path = "/"
	}
	for _, g := range r.paths {
		if g.Match(path) {
			return true
		}
	}
	return false
}

func (r *rule) matchClient(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range r.clients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (r *rule) matchUser(u string) bool {
	if u == "" {
		return false
	}
	name := userName(u)
	for _, p := range r.users {
		if p.full && p.g.Match(u) || !p.full && p.g.Match(name) {
			return true
		}
	}
	return false
}

func (r *rule) matchLists(m *Message) bool {
	for _, l := range r.lists {
		if _, ok := l.MatchURL(m.URL); ok {
			return true
		}
		if m.URL.Host == "" {
			if _, ok := l.MatchHost(m.Host); ok {
				return true
			}
		}
	}
	return false
}

// covers reports whether every message r2 matches is also matched by r,
// so that r2, coming after r, can never match. It is conservative: it
// returns false when it cannot prove it.
func (r *rule) covers(r2 *rule) bool {
	if r.service != ServiceAny && r.service != r2.service {
		return false
	}
	if r.methods != nil && (r2.methods == nil || !subset(r2.methods, r.methods)) {
		return false
	}
	if r.statuses != nil && (r2.statuses == nil || !subset(r2.statuses, r.statuses)) {
		return false
	}
	if r.classes != nil && (r2.classes == nil || !subset(r2.classes, r.classes)) {
		return false
	}
	if r.listName != nil && (r2.listName == nil || !subset(r2.listName, r.listName)) {
		return false
	}
	if r.hosts != nil && (r2.hosts == nil || !coversAll(r2.hosts, r.hosts, hostPat.covers)) {
		return false
	}
	if r.ctypes != nil && (r2.ctypes == nil || !coversAll(r2.ctypes, r.ctypes, mediaCovers)) {
		return false
	}
	if r.paths != nil && (r2.paths == nil || !coversAll(r2.paths, r.paths, (*filters.Glob).Covers)) {
		return false
	}
	if r.clients != nil && (r2.clients == nil || !coversAll(r2.clients, r.clients, func(a, b netip.Prefix) bool {
		return a.Bits() <= b.Bits() && a.Contains(b.Addr())
	})) {
		return false
	}
	if r.users != nil && (r2.users == nil || !coversAll(r2.users, r.users, func(a, b userPat) bool {
		return a.full == b.full && a.g.Covers(b.g)
	})) {
		return false
	}
	if r.hasLen && (!r2.hasLen || r2.minLen < r.minLen || r.maxLen >= 0 && (r2.maxLen < 0 || r2.maxLen > r.maxLen)) {
		return false
	}
	if r.minTP > r2.minTP || r.maxTP > 0 && (r2.maxTP == 0 || r2.maxTP > r.maxTP) {
		return false
	}
	if r.minRTT > r2.minRTT || r.maxRTT > 0 && (r2.maxRTT == 0 || r2.maxRTT > r.maxRTT) {
		return false
	}
	return true
}

func subset[T comparable](small, big []T) bool {
	for _, v := range small {
		if !slices.Contains(big, v) {
			return false
		}
	}
	return true
}

// coversAll reports whether each of small is covered by one of big.
func coversAll[T any](small, big []T, covers func(a, b T) bool) bool {
	for _, s := range small {
		ok := false
		for _, b := range big {
			if covers(b, s) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// describe says what the rule wanted for condition c and what the
// message had, for Explain.
func (r *rule) describe(c cond, e *env) string {
	m := e.m
	switch c {
	case condService:
		return fmt.Sprintf("service: want %s, message is %s", r.service, m.Service)
	case condMethod:
		return fmt.Sprintf("method: want %s, message has %s", strings.Join(r.methods, "|"), m.Method)
	case condHost:
		return fmt.Sprintf("host: want %s, message has %q", join(r.hosts), m.Host)
	case condStatus:
		return fmt.Sprintf("status: want %s, message has %d", join(r.statuses), m.Status)
	case condLength:
		max := "∞"
		if r.maxLen >= 0 {
			max = strconv.FormatInt(r.maxLen, 10)
		}
		return fmt.Sprintf("content length: want %d..%s bytes, message has %d (-1: unknown)", r.minLen, max, m.ContentLength)
	case condContentType:
		return fmt.Sprintf("content_type: want %s, message has %q", strings.Join(r.ctypes, "|"), m.ContentType)
	case condPath:
		return fmt.Sprintf("path: want %s, message has %q", join(r.paths), m.URL.Path)
	case condClient:
		return fmt.Sprintf("client: want %s, message has %v", join(r.clients), m.ClientIP)
	case condUser:
		return fmt.Sprintf("user: want %s, message has %q", strings.Join(userStrings(r.users), "|"), m.User)
	case condBlocklist:
		return fmt.Sprintf("blocklist: %q is in none of %s", m.Host+m.URL.EscapedPath(), strings.Join(r.listName, "|"))
	case condBandwidth:
		return fmt.Sprintf("bandwidth: want %s, client is %s", strings.Join(r.classes, "|"), e.net().Class)
	case condThroughput:
		return fmt.Sprintf("throughput: want [%v, %v), client has %v (0: unknown)", r.minTP, bound(r.maxTP), e.net().Throughput)
	case condRTT:
		return fmt.Sprintf("rtt: want [%v, %v), client has %v (0: unknown)", r.minRTT, bound(r.maxRTT), e.net().RTT)
	}
	return ""
}

func bound[T comparable](v T) any {
	var zero T
	if v == zero {
		return "∞"
	}
	return v
}

func join[T any](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, "|")
}

func userStrings(us []userPat) []string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.g.String()
	}
	return s
}
