package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/edgeadapt/edgeadapt/filters"
	"github.com/edgeadapt/edgeadapt/filters/blocklist"
	"github.com/edgeadapt/edgeadapt/filters/blockpage"
	"github.com/edgeadapt/edgeadapt/filters/headers"
	"github.com/edgeadapt/edgeadapt/filters/rewrite"
)

// DefaultMaxFileBytes caps the size of a policy file.
const DefaultMaxFileBytes = 8 << 20

// DefaultMaxRules caps the number of rules in a policy.
const DefaultMaxRules = 100_000

// fileConfig mirrors policy.toml. Keys are documented in the README's
// "Policy" section.
type fileConfig struct {
	Bandwidth  bandwidthConfig            `toml:"bandwidth"`
	BlockPage  blockpage.Page             `toml:"block_page"`
	Blocklists map[string]*blocklist.List `toml:"blocklists"`
	Profiles   map[string]*Profile        `toml:"profiles"`
	Rules      []ruleConfig               `toml:"rules"`
}

type bandwidthConfig struct {
	ClientHints *bool         `toml:"client_hints"`
	SaveData    string        `toml:"save_data"`
	MinReports  *int          `toml:"min_reports"`
	MaxAge      Duration      `toml:"max_age"`
	Classes     []classConfig `toml:"classes"`
}

type classConfig struct {
	Name  string  `toml:"name"`
	Below BitRate `toml:"below"`
}

type ruleConfig struct {
	Name            string         `toml:"name"`
	Priority        int            `toml:"priority"`
	Match           matchConfig    `toml:"match"`
	Action          string         `toml:"action"`
	Status          int            `toml:"status"`
	Reason          string         `toml:"reason"`
	Location        string         `toml:"location"`
	Profile         string         `toml:"profile"`
	RequestHeaders  *headers.Rules `toml:"request_headers"`
	ResponseHeaders *headers.Rules `toml:"response_headers"`
	Rewrite         *rewrite.URL   `toml:"rewrite"`
}

type matchConfig struct {
	Service          []string `toml:"service"`
	Method           []string `toml:"method"`
	Host             []string `toml:"host"`
	Path             []string `toml:"path"`
	ContentType      []string `toml:"content_type"`
	MinContentLength *int64   `toml:"min_content_length"`
	MaxContentLength *int64   `toml:"max_content_length"`
	Status           []int    `toml:"status"`
	Client           []string `toml:"client"`
	User             []string `toml:"user"`
	Blocklist        []string `toml:"blocklist"`
	Bandwidth        []string `toml:"bandwidth"`
	MinThroughput    BitRate  `toml:"min_throughput"`
	MaxThroughput    BitRate  `toml:"max_throughput"`
	MinRTT           Duration `toml:"min_rtt"`
	MaxRTT           Duration `toml:"max_rtt"`
}

// Error is one problem in a policy file, located by file, line and key.
type Error struct {
	File string // may be ""
	Line int    // 0 when unknown
	Key  string // dotted key path, e.g. "rules[2].match.client"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("policy")
	}
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadFile reads, parses and validates the policy at path. Relative file
// names inside it (block lists, the block page template) are relative to
// the policy file's directory. Every problem found is reported, each as
// an *Error, joined with errors.Join.
func LoadFile(path string) (*Policy, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if fi.Size() > DefaultMaxFileBytes {
		return nil, &Error{File: path, Msg: fmt.Sprintf("file is %d bytes, over the %d-byte limit", fi.Size(), DefaultMaxFileBytes)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, b)
}

// CheckFile loads the policy at path and returns every problem, or nil:
// what `icapd -check-policy FILE` prints before exiting non-zero.
// Warnings do not make it fail; print p.Warnings from LoadFile for them.
func CheckFile(path string) error {
	p, err := LoadFile(path)
	if p != nil {
		p.Close()
	}
	return err
}

// Parse parses and validates policy source; name is used in errors and to
// resolve relative file names ("" means the current directory).
func Parse(name string, src []byte) (*Policy, error) {
	if len(src) > DefaultMaxFileBytes {
		return nil, &Error{File: name, Msg: fmt.Sprintf("source is %d bytes, over the %d-byte limit", len(src), DefaultMaxFileBytes)}
	}
	l := &loader{file: name, loc: newLocator(src)}
	var cfg fileConfig
	md, err := toml.Decode(string(src), &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Key: l.loc.pathAt(pe.Position.Line, pe.LastKey), Msg: pe.Message}
		}
		// Type errors are plain errors of the form
		// `toml: line 3 (last key "a.b"): incompatible types: ...`.
		e := &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
		if m := typeErrRE.FindStringSubmatch(e.Msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Key = l.loc.pathAt(e.Line, m[2])
			e.Msg = e.Msg[len(m[0]):]
		}
		return nil, e
	}
	for _, k := range md.Undecoded() {
		path, line := l.loc.undecoded(k.String())
		l.errs = append(l.errs, &Error{File: name, Line: line, Key: path, Msg: "unknown key"})
	}
	p := l.build(&cfg)
	if len(l.errs) > 0 {
		if p != nil {
			p.Close()
		}
		return nil, errors.Join(l.errs...)
	}
	p.File = name
	p.Hash = sha256.Sum256(src)
	p.Version = version(0, p.Hash)
	p.Warnings = l.warnings
	return p, nil
}

// version is the ISTag-able version string: generation and 48 bits of
// the content hash, at most 32 bytes.
func version(gen uint64, h [32]byte) string {
	return fmt.Sprintf("%d-%x", gen, h[:6])
}

var typeErrRE = regexp.MustCompile(`^line (\d+) \(last key "([^"]*)"\): `)

type loader struct {
	file     string
	loc      *locator
	errs     []error
	warnings []string
}

// errf records an error at the key path (e.g. "rules[2].match.client").
func (l *loader) errf(key, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: l.loc.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) warnf(key, format string, args ...any) {
	e := &Error{File: l.file, Line: l.loc.line(key), Key: key, Msg: fmt.Sprintf(format, args...)}
	l.warnings = append(l.warnings, e.Error())
}

func (l *loader) rel(name string) string {
	if name == "" || filepath.IsAbs(name) || l.file == "" {
		return name
	}
	return filepath.Join(filepath.Dir(l.file), name)
}

func (l *loader) build(cfg *fileConfig) *Policy {
	p := &Policy{hints: true, minReports: 1, profiles: map[string]*Profile{}, lists: map[string]*blocklist.List{}}
	l.bandwidth(p, &cfg.Bandwidth)

	page := cfg.BlockPage
	page.TemplateFile = l.rel(page.TemplateFile)
	if err := page.Validate(); err != nil {
		l.errf("block_page", "%v", err)
	}
	p.page = &page

	for _, name := range sortedKeys(cfg.Blocklists) {
		bl := cfg.Blocklists[name]
		for i := range bl.Files {
			bl.Files[i] = l.rel(bl.Files[i])
		}
		if err := bl.Validate(); err != nil {
			l.errf("blocklists."+name, "%v", err)
			continue
		}
		p.lists[name] = bl
	}
	for _, name := range sortedKeys(cfg.Profiles) {
		prof := cfg.Profiles[name]
		if prof == nil {
			continue
		}
		prof.Name = name
		prof.validate(func(key, format string, args ...any) {
			l.errf(joinKey("profiles."+name, key), format, args...)
		})
		p.profiles[name] = prof
	}
	if len(cfg.Rules) > DefaultMaxRules {
		l.errf("rules", "%d rules, over the limit of %d", len(cfg.Rules), DefaultMaxRules)
		return p
	}
	names := map[string]int{}
	for i := range cfg.Rules {
		key := fmt.Sprintf("rules[%d]", i)
		r := l.rule(p, key, &cfg.Rules[i])
		if r == nil {
			continue
		}
		if j, dup := names[r.name]; dup {
			l.errf(key+".name", "duplicate rule name %q (also rules[%d])", r.name, j)
		}
		names[r.name] = i
		p.rules = append(p.rules, r)
	}
	// Priority: higher first; equal priorities keep file order.
	sort.SliceStable(p.rules, func(i, j int) bool { return p.rules[i].priority > p.rules[j].priority })
	for i, r := range p.rules {
		r.order = i
	}
	if len(l.errs) == 0 {
		// With other errors (an unknown key may be a misspelt
		// condition), unreachable rules would be noise.
		l.shadowed(p)
	}
	p.buildIndex()
	return p
}

func joinKey(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "." + b
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (l *loader) bandwidth(p *Policy, c *bandwidthConfig) {
	if c.ClientHints != nil {
		p.hints = *c.ClientHints
	}
	if c.MinReports != nil {
		if *c.MinReports < 0 {
			l.errf("bandwidth.min_reports", "must be >= 0, got %d", *c.MinReports)
		}
		p.minReports = *c.MinReports
	}
	p.maxAge = timeDuration(c.MaxAge)
	if len(c.Classes) == 0 {
		p.classes = defaultClasses
	}
	seen := map[string]bool{}
	for i, cc := range c.Classes {
		key := fmt.Sprintf("bandwidth.classes[%d]", i)
		switch {
		case cc.Name == "":
			l.errf(key+".name", "missing class name")
		case cc.Name == ClassUnknown:
			l.errf(key+".name", "%q is reserved for clients nothing is known about", ClassUnknown)
		case seen[cc.Name]:
			l.errf(key+".name", "duplicate class %q", cc.Name)
		}
		seen[cc.Name] = true
		last := i == len(c.Classes)-1
		switch {
		case cc.Below == 0 && !last:
			l.errf(key+".below", "class %q needs below: only the last class may be unbounded", cc.Name)
		case cc.Below != 0 && last:
			l.errf(key+".below", "the last class %q must have no below: it takes every faster client", cc.Name)
		case i > 0 && cc.Below != 0 && cc.Below <= c.Classes[i-1].Below:
			l.errf(key+".below", "classes must be in increasing order of below: %v <= %v", cc.Below, c.Classes[i-1].Below)
		}
		p.classes = append(p.classes, class{cc.Name, cc.Below})
	}
	p.saveData = p.classes[0].name
	if c.SaveData != "" {
		if !p.hasClass(c.SaveData) {
			l.errf("bandwidth.save_data", "unknown class %q (classes: %s)", c.SaveData, p.classNames())
		}
		p.saveData = c.SaveData
	}
}

func timeDuration(d Duration) time.Duration { return time.Duration(d) }

func (p *Policy) hasClass(name string) bool {
	for _, c := range p.classes {
		if c.name == name {
			return true
		}
	}
	return name == ClassUnknown
}

func (p *Policy) classNames() string {
	s := make([]string, 0, len(p.classes)+1)
	for _, c := range p.classes {
		s = append(s, c.name)
	}
	return strings.Join(append(s, ClassUnknown), ", ")
}

// rule compiles one [[rules]] entry, recording every problem.
func (l *loader) rule(p *Policy, key string, c *ruleConfig) *rule {
	nerr := len(l.errs)
	r := &rule{name: c.Name, key: key, line: l.loc.line(key), priority: c.Priority, maxLen: -1}
	if c.Name == "" {
		l.errf(key+".name", "missing rule name")
	}
	mk := key + ".match"
	m := &c.Match
	for _, s := range m.Service {
		svc, ok := ParseService(s)
		if !ok {
			l.errf(mk+".service", "unknown service %q: want reqmod or respmod", s)
		}
		if len(m.Service) == 1 {
			r.service = svc
		}
	}
	for _, s := range m.Method {
		if s == "" || strings.ContainsAny(s, " \t/") {
			l.errf(mk+".method", "bad method %q", s)
		}
		r.methods = append(r.methods, strings.ToUpper(s))
	}
	r.hosts = compileEach(l, mk+".host", m.Host, parseHostPat)
	r.paths = compileEach(l, mk+".path", m.Path, filters.CompileGlob)
	for _, t := range m.ContentType {
		if err := checkMediaPattern(t); err != nil {
			l.errf(mk+".content_type", "%v", err)
		}
		r.ctypes = append(r.ctypes, t)
	}
	if m.MinContentLength != nil || m.MaxContentLength != nil {
		r.hasLen = true
		if m.MinContentLength != nil {
			r.minLen = *m.MinContentLength
		}
		if m.MaxContentLength != nil {
			r.maxLen = *m.MaxContentLength
		}
		if r.minLen < 0 || m.MaxContentLength != nil && r.maxLen < r.minLen {
			l.errf(mk+".max_content_length", "empty range %d..%d", r.minLen, r.maxLen)
		}
	}
	for _, s := range m.Status {
		if s < 100 || s > 999 {
			l.errf(mk+".status", "bad HTTP status %d", s)
		}
		r.statuses = append(r.statuses, s)
	}
	r.clients = compileEach(l, mk+".client", m.Client, parseClient)
	r.users = compileEach(l, mk+".user", m.User, func(s string) (userPat, error) {
		g, err := filters.CompileGlob(s)
		return userPat{g: g, full: strings.Contains(s, "://")}, err
	})
	for _, n := range m.Blocklist {
		bl, ok := p.lists[n]
		if !ok {
			l.errf(mk+".blocklist", "unknown block list %q (define it under [blocklists.%s])", n, n)
		}
		r.listName = append(r.listName, n)
		r.lists = append(r.lists, bl)
	}
	for _, n := range m.Bandwidth {
		if !p.hasClass(n) {
			l.errf(mk+".bandwidth", "unknown class %q (classes: %s)", n, p.classNames())
		}
		r.classes = append(r.classes, n)
	}
	r.minTP, r.maxTP = m.MinThroughput, m.MaxThroughput
	if r.maxTP > 0 && r.maxTP <= r.minTP {
		l.errf(mk+".max_throughput", "empty range: max_throughput %v <= min_throughput %v", r.maxTP, r.minTP)
	}
	r.minRTT, r.maxRTT = timeDuration(m.MinRTT), timeDuration(m.MaxRTT)
	if r.maxRTT > 0 && r.maxRTT <= r.minRTT {
		l.errf(mk+".max_rtt", "empty range: max_rtt %v <= min_rtt %v", r.maxRTT, r.minRTT)
	}
	r.needNet = r.classes != nil || r.minTP > 0 || r.maxTP > 0 || r.minRTT > 0 || r.maxRTT > 0

	l.action(p, key, c, r)
	if len(l.errs) > nerr {
		return nil
	}
	return r
}

func (l *loader) action(p *Policy, key string, c *ruleConfig, r *rule) {
	a, ok := parseAction(c.Action)
	if !ok {
		l.errf(key+".action", "unknown action %q: want pass, block, redirect or transcode", c.Action)
		return
	}
	r.action, r.status, r.reason, r.location = a, c.Status, c.Reason, c.Location
	if a != Block && c.Reason != "" {
		l.errf(key+".reason", "reason is for action block")
	}
	if a != Redirect && c.Location != "" {
		l.errf(key+".location", "location is for action redirect")
	}
	if a != Transcode && c.Profile != "" {
		l.errf(key+".profile", "profile is for action transcode")
	}
	switch a {
	case Pass, Transcode:
		if c.Status != 0 {
			l.errf(key+".status", "status is for actions block and redirect")
		}
	case Block:
		if r.status == 0 {
			r.status = DefaultBlockStatus
		}
		if r.status < 400 || r.status > 599 {
			l.errf(key+".status", "block status must be 4xx or 5xx, got %d", r.status)
		}
	case Redirect:
		if r.status == 0 {
			r.status = DefaultRedirectStatus
		}
		if r.status < 300 || r.status > 399 {
			l.errf(key+".status", "redirect status must be 3xx, got %d", r.status)
		}
		u, err := url.Parse(c.Location)
		if c.Location == "" || err != nil || strings.ContainsAny(c.Location, "\r\n") || !u.IsAbs() && !strings.HasPrefix(c.Location, "/") {
			l.errf(key+".location", "redirect needs an absolute URL or path, got %q", c.Location)
		}
	}
	if a == Transcode {
		switch prof, ok := p.profiles[c.Profile]; {
		case c.Profile == "":
			l.errf(key+".profile", "transcode needs a profile")
		case !ok:
			l.errf(key+".profile", "unknown profile %q (define it under [profiles.%s])", c.Profile, c.Profile)
		default:
			r.profile = prof
		}
		if r.service == Reqmod {
			l.errf(key+".match.service", "transcode applies to responses, but the rule matches reqmod only")
		}
	}
	for _, h := range []struct {
		name string
		rs   *headers.Rules
		dst  **headers.Rules
	}{{"request_headers", c.RequestHeaders, &r.reqHdr}, {"response_headers", c.ResponseHeaders, &r.respHdr}} {
		if h.rs == nil {
			continue
		}
		if err := h.rs.Validate(); err != nil {
			l.errf(key+"."+h.name, "%v", err)
			continue
		}
		*h.dst = h.rs
	}
	if c.Rewrite != nil {
		switch err := c.Rewrite.Validate(); {
		case err != nil:
			l.errf(key+".rewrite", "%v", err)
		case a != Pass:
			l.errf(key+".rewrite", "rewrite is for action pass (use redirect to send the client elsewhere)")
		case r.service == Respmod:
			l.errf(key+".rewrite", "rewrite changes requests, but the rule matches respmod only")
		default:
			r.rewrite = c.Rewrite
		}
	}
	if a == Block || a == Redirect {
		if !r.respHdr.Empty() || !r.reqHdr.Empty() {
			l.warnf(key, "header edits are ignored by action %s", a)
		}
	}
	if r.reqHdr != nil && r.service == Respmod {
		l.warnf(key+".request_headers", "the rule matches respmod only, where request headers are not forwarded")
	}
}

// compileEach parses every value of a list key, recording each error
// at the key.
func compileEach[T any](l *loader, key string, vals []string, parse func(string) (T, error)) []T {
	var out []T
	for _, v := range vals {
		x, err := parse(v)
		if err != nil {
			l.errf(key, "%v", err)
			continue
		}
		out = append(out, x)
	}
	return out
}

// shadowed reports every rule an earlier rule makes unreachable.
func (l *loader) shadowed(p *Policy) {
	for j, r2 := range p.rules {
		for _, r := range p.rules[:j] {
			if r.covers(r2) {
				l.errs = append(l.errs, &Error{File: l.file, Line: r2.line, Key: r2.key,
					Msg: fmt.Sprintf("rule %q can never match: rule %q (line %d) comes first and matches everything it does", r2.name, r.name, r.line)})
				break
			}
		}
	}
}

// parseHostPat accepts "example.com" (exactly that host) and
// ".example.com" (the domain and every subdomain); an IP address is an
// exact host.
func parseHostPat(s string) (hostPat, error) {
	suffix := strings.HasPrefix(s, ".")
	name := strings.TrimPrefix(s, ".")
	if strings.HasPrefix(name, "*.") {
		return hostPat{}, fmt.Errorf("host %q: write the domain as %q (leading dot: domain and subdomains)", s, name[1:])
	}
	if a, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && !suffix {
		return hostPat{name: a.String()}, nil
	}
	if name == "" || strings.ContainsAny(name, ":/ *?") || strings.ToLower(name) != name ||
		strings.Contains(name, "..") || strings.HasSuffix(name, ".") || strings.HasPrefix(name, ".") {
		return hostPat{}, fmt.Errorf("host %q: want a lower-case host name, without port or path", s)
	}
	return hostPat{name: name, suffix: suffix}, nil
}

// parseClient accepts a CIDR prefix or a single address.
func parseClient(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("client %q: %w", s, err)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("client %q: host bits set; did you mean %v?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("client %q: not an address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
