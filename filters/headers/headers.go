// Package headers is the header-rules filter: it adds, sets and removes
// HTTP header fields of a request or a response.
//
// Rules apply in a fixed order, whatever their order in the file: remove,
// then set, then add. So `remove = ["Via"]` with `add = { Via = "edge" }`
// leaves exactly one Via field, and set replaces every earlier value.
package headers

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/edgeadapt/edgeadapt/filters"
)

// Rules edits the header fields of one message. The zero value changes
// nothing. Field names are canonicalised by Validate.
type Rules struct {
	// Add appends a value to each named field, keeping existing values.
	Add map[string]string `toml:"add"`
	// Set replaces each named field with the single value given.
	Set map[string]string `toml:"set"`
	// Remove deletes each named field.
	Remove []string `toml:"remove"`

	ops []op // canonical, sorted; filled by Validate
}

type op struct {
	kind  opKind
	name  string
	value string
}

type opKind uint8

const (
	opRemove opKind = iota
	opSet
	opAdd
)

// Validate checks every field name is an HTTP token and every value is
// free of CR, LF and NUL, and prepares the rules for Apply.
func (r *Rules) Validate() error {
	r.ops = r.ops[:0]
	for _, name := range r.Remove {
		if err := checkName(name); err != nil {
			return fmt.Errorf("headers: remove: %w", err)
		}
		r.ops = append(r.ops, op{kind: opRemove, name: http.CanonicalHeaderKey(name)})
	}
	for _, kv := range []struct {
		key  string
		kind opKind
		m    map[string]string
	}{{"set", opSet, r.Set}, {"add", opAdd, r.Add}} {
		names := make([]string, 0, len(kv.m))
		for n := range kv.m {
			names = append(names, n)
		}
		sort.Strings(names) // deterministic order for add of several fields
		for _, n := range names {
			if err := checkName(n); err != nil {
				return fmt.Errorf("headers: %s: %w", kv.key, err)
			}
			v := kv.m[n]
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("headers: %s: value of %q contains CR, LF or NUL", kv.key, n)
			}
			r.ops = append(r.ops, op{kind: kv.kind, name: http.CanonicalHeaderKey(n), value: v})
		}
	}
	return nil
}

// Empty reports whether the rules change nothing.
func (r *Rules) Empty() bool { return r == nil || len(r.ops) == 0 }

// Apply edits h in place: remove, then set, then add. It reports whether
// h changed. A nil *Rules changes nothing.
func (r *Rules) Apply(h http.Header) bool {
	if r == nil {
		return false
	}
	changed := false
	for _, o := range r.ops {
		switch o.kind {
		case opRemove:
			if _, ok := h[o.name]; ok {
				delete(h, o.name)
				changed = true
			}
		case opSet:
			if v := h[o.name]; len(v) != 1 || v[0] != o.value {
				h[o.name] = []string{o.value}
				changed = true
			}
		case opAdd:
			h[o.name] = append(h[o.name], o.value)
			changed = true
		}
	}
	return changed
}

// Names returns the canonical names of every field the rules touch, in
// the order they apply.
func (r *Rules) Names() []string {
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.ops))
	for _, o := range r.ops {
		out = append(out, o.name)
	}
	return out
}

// checkName reports whether name is a valid field name (RFC 9110 token).
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty field name")
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("field name %q: invalid character %q", name, name[i])
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

var _ filters.Validator = (*Rules)(nil)
