package policy

import (
	"strconv"
	"strings"
)

// locator maps key paths of a TOML document to line numbers, for error
// messages. The TOML decoder keeps positions to itself, so this is a
// line-oriented scan that understands table headers ([a.b], [[a]]) and
// "key = value" lines, which is all policy.toml uses; a key it cannot
// place gets the line of its nearest enclosing table.
type locator struct {
	entries []locEntry
	byPath  map[string]int
	used    map[int]bool // entries already reported as undecoded
}

type locEntry struct {
	path  string // with array indices: rules[2].match.host
	plain string // without: rules.match.host (as MetaData.Keys spells it)
	line  int
}

func newLocator(src []byte) *locator {
	l := &locator{byPath: map[string]int{}, used: map[int]bool{}}
	arrays := map[string]int{} // plain array-of-tables path → count
	cur, curPlain := "", ""
	for n, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			isArray := strings.HasPrefix(line, "[[")
			end := strings.Index(line, "]")
			if end < 0 {
				continue
			}
			parts := splitKey(strings.Trim(line[:end], "[ \t"))
			cur, curPlain = "", ""
			for i, part := range parts {
				curPlain = joinKey(curPlain, part)
				cur = joinKey(cur, part)
				if i == len(parts)-1 && isArray {
					arrays[curPlain]++
				}
				if c, ok := arrays[curPlain]; ok {
					cur += "[" + strconv.Itoa(c-1) + "]"
				}
			}
			l.add(cur, curPlain, n+1)
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			continue
		}
		path, plain := cur, curPlain
		for _, part := range splitKey(line[:eq]) {
			path, plain = joinKey(path, part), joinKey(plain, part)
		}
		l.add(path, plain, n+1)
	}
	return l
}

func (l *locator) add(path, plain string, line int) {
	l.entries = append(l.entries, locEntry{path, plain, line})
	if _, ok := l.byPath[path]; !ok {
		l.byPath[path] = line
	}
}

// keyEnd returns the index of the '=' ending the key of a key/value
// line, or -1 if the line is not one (e.g. an element of a multi-line
// array).
func keyEnd(line string) int {
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		case c == '[' || c == '{' || c == ',' || c == '#':
			return -1
		}
	}
	return -1
}

// splitKey splits a dotted TOML key, unquoting quoted parts.
func splitKey(k string) []string {
	var parts []string
	var b strings.Builder
	quote := byte(0)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(b.String()))
			b.Reset()
		case c == ' ' || c == '\t':
		default:
			b.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(b.String()))
}

// line returns the line of path, or of its nearest located parent; 0 if
// none.
func (l *locator) line(path string) int {
	for path != "" {
		if n, ok := l.byPath[path]; ok {
			return n
		}
		// A table written only through dotted keys (headers.set = ...)
		// has no line of its own: use its first key's.
		for _, e := range l.entries {
			if strings.HasPrefix(e.path, path+".") {
				return e.line
			}
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// undecoded locates a key MetaData.Undecoded reports (without array
// indices): the first occurrence not reported yet.
func (l *locator) undecoded(plain string) (path string, line int) {
	for i, e := range l.entries {
		if e.plain == plain && !l.used[i] {
			l.used[i] = true
			return e.path, e.line
		}
	}
	return plain, 0
}

// pathAt returns the indexed path of the key plain (as the TOML decoder
// names it, without indices) on line n, or plain itself.
func (l *locator) pathAt(n int, plain string) string {
	for _, e := range l.entries {
		if e.line == n && e.plain == plain {
			return e.path
		}
	}
	return plain
}
