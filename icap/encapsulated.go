package icap

import (
	"strconv"
	"strings"
)

// Section names an entity of the Encapsulated header (RFC 3507 section
// 4.4.1).
type Section uint8

// Encapsulated entity names.
const (
	ReqHdr Section = iota + 1
	ResHdr
	ReqBody
	ResBody
	OptBody
	NullBody
)

var sectionNames = [...]string{ReqHdr: "req-hdr", ResHdr: "res-hdr", ReqBody: "req-body", ResBody: "res-body", OptBody: "opt-body", NullBody: "null-body"}

func (s Section) String() string {
	if int(s) < len(sectionNames) && s != 0 {
		return sectionNames[s]
	}
	return "section(" + strconv.Itoa(int(s)) + ")"
}

func (s Section) isBody() bool { return s >= ReqBody }

// Encapsulated is a parsed Encapsulated header: up to four entities with
// their byte offsets, in order.
type Encapsulated struct {
	N       int
	Entries [4]struct {
		Section Section
		Offset  int
	}
}

// maxOffset bounds offsets; anything larger cannot be a header length.
const maxOffset = 1 << 30

// ParseEncapsulated parses an Encapsulated header value such as
// "req-hdr=0, res-hdr=137, res-body=296". It checks the syntax and that
// offsets start at 0 and strictly increase; ValidFor checks the order
// against a method.
func ParseEncapsulated(v string) (Encapsulated, error) {
	var e Encapsulated
	rest := v
	for {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		item = strings.TrimSpace(item)
		name, off, ok := strings.Cut(item, "=")
		if !ok {
			return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: entry %q has no offset", v, item)
		}
		var s Section
		switch strings.TrimSpace(strings.ToLower(name)) {
		case "req-hdr":
			s = ReqHdr
		case "res-hdr":
			s = ResHdr
		case "req-body":
			s = ReqBody
		case "res-body":
			s = ResBody
		case "opt-body":
			s = OptBody
		case "null-body":
			s = NullBody
		default:
			return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: unknown entity %q", v, name)
		}
		off = strings.TrimSpace(off)
		n, err := strconv.Atoi(off)
		if err != nil || n < 0 || n > maxOffset || off[0] == '+' {
			return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: bad offset %q", v, off)
		}
		if e.N == len(e.Entries) {
			return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: too many entities", v)
		}
		if e.N == 0 && n != 0 {
			return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: first offset must be 0", v)
		}
		if e.N > 0 {
			prev := e.Entries[e.N-1]
			if prev.Section.isBody() {
				return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: %s must be the last entity", v, prev.Section)
			}
			if n <= prev.Offset {
				return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: offsets must increase", v)
			}
			if s <= prev.Section && !s.isBody() {
				return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: %s after %s", v, s, prev.Section)
			}
		}
		e.Entries[e.N].Section = s
		e.Entries[e.N].Offset = n
		e.N++
		if rest == "" {
			break
		}
	}
	if !e.Entries[e.N-1].Section.isBody() {
		return e, protoErr(StatusBadRequest, ErrBadEncapsulated, "Encapsulated %q: last entity must be a body or null-body", v)
	}
	return e, nil
}

// ValidFor checks the entity order RFC 3507 section 4.4.1 allows for a
// request of the given method: REQMOD [req-hdr] (req-body|null-body);
// RESPMOD [req-hdr] [res-hdr] (res-body|null-body); OPTIONS
// (opt-body|null-body).
func (e Encapsulated) ValidFor(method string) bool {
	body := e.Body()
	switch method {
	case MethodREQMOD:
		return !e.Has(ResHdr) && (body == ReqBody || body == NullBody)
	case MethodRESPMOD:
		return body == ResBody || body == NullBody
	case MethodOPTIONS:
		return e.N == 1 && (body == OptBody || body == NullBody)
	}
	return false
}

// validResponse checks the order allowed in a response: the adapted
// request (req-hdr with req-body/null-body), or a response with optional
// req-hdr, or an options body.
func (e Encapsulated) validResponse() bool {
	switch e.Body() {
	case ReqBody:
		return !e.Has(ResHdr)
	case ResBody:
		return true
	case NullBody:
		return true
	case OptBody:
		return e.N == 1
	}
	return false
}

// Has reports whether the entity s is present.
func (e Encapsulated) Has(s Section) bool {
	for i := 0; i < e.N; i++ {
		if e.Entries[i].Section == s {
			return true
		}
	}
	return false
}

// Body returns the last entity (the body or null-body), or 0 if empty.
func (e Encapsulated) Body() Section {
	if e.N == 0 {
		return 0
	}
	return e.Entries[e.N-1].Section
}

// String formats e as an Encapsulated header value.
func (e Encapsulated) String() string {
	return string(e.appendTo(nil))
}

func (e Encapsulated) appendTo(b []byte) []byte {
	for i := 0; i < e.N; i++ {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, e.Entries[i].Section.String()...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(e.Entries[i].Offset), 10)
	}
	return b
}
