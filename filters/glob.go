package filters

import (
	"fmt"
	"regexp"
	"strings"
)

// Glob is a compiled shell-style pattern. It is safe for concurrent use.
//
// Syntax: '*' matches any run of characters, including '/'; '?' matches
// exactly one character; '[abc]', '[a-z]' and '[!a-z]' match one character
// of (or not of) a class; '\' quotes the next character. Everything else
// matches itself. Unlike path.Match, '*' crosses '/', so "/ads/*" matches
// "/ads/2024/banner.gif": URL paths are matched as plain strings.
type Glob struct {
	pattern string
	kind    globKind
	lit     string         // literal part for the fast kinds
	prefix  string         // literal prefix of every match
	re      *regexp.Regexp // globGeneral only
}

type globKind uint8

const (
	globExact    globKind = iota // no metacharacter
	globAny                      // "*"
	globPrefix                   // "lit*"
	globSuffix                   // "*lit"
	globContains                 // "*lit*"
	globGeneral                  // anything else, via regexp
)

// CompileGlob parses pattern. It fails on an empty pattern, an unclosed
// or empty '[' class, and a trailing '\'.
func CompileGlob(pattern string) (*Glob, error) {
	if pattern == "" {
		return nil, fmt.Errorf("glob: empty pattern")
	}
	var re strings.Builder
	re.WriteString(`^`)
	meta := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*':
			meta = true
			re.WriteString(`.*`)
		case '?':
			meta = true
			re.WriteString(`.`)
		case '\\':
			meta = true
			if i+1 == len(pattern) {
				return nil, fmt.Errorf("glob %q: trailing backslash", pattern)
			}
			i++
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		case '[':
			meta = true
			end := strings.IndexByte(pattern[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("glob %q: unclosed '[' at offset %d", pattern, i)
			}
			class := pattern[i+1 : i+1+end]
			neg := strings.HasPrefix(class, "!")
			if neg {
				class = class[1:]
			}
			if class == "" {
				return nil, fmt.Errorf("glob %q: empty character class at offset %d", pattern, i)
			}
			re.WriteString(`[`)
			if neg {
				re.WriteString(`^`)
			}
			for j := 0; j < len(class); j++ {
				if class[j] == '-' && j > 0 && j < len(class)-1 {
					if class[j-1] > class[j+1] {
						return nil, fmt.Errorf("glob %q: bad range %q", pattern, class[j-1:j+2])
					}
					re.WriteByte('-')
					continue
				}
				re.WriteString(regexp.QuoteMeta(class[j : j+1]))
			}
			re.WriteString(`]`)
			i += end + 1
		default:
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	re.WriteString(`$`)
	g := &Glob{pattern: pattern, prefix: pattern}
	if i := strings.IndexAny(pattern, "*?[\\"); i >= 0 {
		g.prefix = pattern[:i]
	}
	if !meta {
		g.kind, g.lit = globExact, pattern
		return g, nil
	}
	inner := strings.Trim(pattern, "*")
	if !strings.ContainsAny(inner, "*?[\\") {
		switch {
		case inner == "":
			g.kind = globAny
			return g, nil
		case pattern == inner+"*":
			g.kind, g.lit = globPrefix, inner
			return g, nil
		case pattern == "*"+inner:
			g.kind, g.lit = globSuffix, inner
			return g, nil
		case pattern == "*"+inner+"*":
			g.kind, g.lit = globContains, inner
			return g, nil
		}
	}
	r, err := regexp.Compile(re.String())
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	g.kind, g.re = globGeneral, r
	return g, nil
}

// MustCompileGlob is CompileGlob that panics on error, for tests and
// package-level patterns.
func MustCompileGlob(pattern string) *Glob {
	g, err := CompileGlob(pattern)
	if err != nil {
		panic(err)
	}
	return g
}

// Match reports whether s matches the whole pattern.
func (g *Glob) Match(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.lit
	case globAny:
		return true
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globSuffix:
		return strings.HasSuffix(s, g.lit)
	case globContains:
		return strings.Contains(s, g.lit)
	}
	return g.re.MatchString(s)
}

// String returns the pattern as written.
func (g *Glob) String() string { return g.pattern }

// Prefix returns the literal text every match starts with ("/ads/" for
// "/ads/*.gif"; "" for "*.gif").
func (g *Glob) Prefix() string { return g.prefix }

// Literal reports whether the pattern has no metacharacter, so that it
// only matches itself.
func (g *Glob) Literal() bool { return g.kind == globExact }

// Covers reports whether every string g2 matches is also matched by g. It
// is conservative: false means "not proven", not "no". The policy uses it
// to find rules an earlier rule shadows.
func (g *Glob) Covers(g2 *Glob) bool {
	switch {
	case g.kind == globAny:
		return true
	case g.pattern == g2.pattern:
		return true
	case g2.kind == globExact:
		return g.Match(g2.lit)
	case g.kind == globPrefix && g2.kind == globPrefix:
		return strings.HasPrefix(g2.lit, g.lit)
	case g.kind == globSuffix && g2.kind == globSuffix:
		return strings.HasSuffix(g2.lit, g.lit)
	case g.kind == globContains && (g2.kind == globPrefix || g2.kind == globSuffix || g2.kind == globContains):
		return strings.Contains(g2.lit, g.lit)
	}
	return false
}
