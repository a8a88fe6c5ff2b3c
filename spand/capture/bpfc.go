package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// CompileBuiltin compiles expr without tcpdump, for the common subset of
// tcpdump's syntax:
//
//	[ip|ip6|tcp|udp|icmp|icmp6|arp]   protocol alone
//	[src|dst|src or dst|src and dst] host ADDR
//	[src|dst] net CIDR   (or net ADDR mask MASK)
//	[tcp|udp] [src|dst] port N
//	and, &&, or, ||, not, !, parentheses
//
// A bare value repeats the last qualifiers ("host a or b"). Like tcpdump,
// host and net also match ARP/RARP on Ethernet and cooked links, port
// matches TCP, UDP and SCTP, and IPv4 fragments after the first never
// match a port. VLAN-tagged frames are not looked into (as in tcpdump
// without the vlan keyword), nor IPv6 extension headers (tcpdump follows a
// fragment header to find TCP or UDP; this compiler does not).
func CompileBuiltin(expr string, lt layers.LinkType) (*Filter, error) {
	l, ok := linkLayouts[lt]
	if !ok {
		return nil, fmt.Errorf("%w %q: no built-in support for link type %s", ErrFilter, expr, lt)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	p := &parser{toks: toks, link: l}
	n, err := p.expr()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	var g gen
	tl, fl := g.label(), g.label()
	g.node(n, tl, fl)
	g.place(tl)
	g.emit(bpf.RetConstant{Val: DefaultSnapLen})
	g.place(fl)
	g.emit(bpf.RetConstant{Val: 0})
	ins, err := g.resolve()
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	return newFilter(expr, "builtin", raw)
}

// linkLayout says where the network layer starts and how its type is
// told.
type linkLayout struct {
	l3         uint32
	typeOff    uint32 // offset of a 16-bit ethertype; ^0 when none
	family     bool   // BSD loopback: 32-bit address family in either byte order
	rawIP      bool   // no link header: IP version from the first nibble
	arpCapable bool
}

var linkLayouts = map[layers.LinkType]linkLayout{
	layers.LinkTypeEthernet:  {l3: 14, typeOff: 12, arpCapable: true},
	layers.LinkTypeLinuxSLL:  {l3: 16, typeOff: 14, arpCapable: true},
	layers.LinkTypeLinuxSLL2: {l3: 20, typeOff: 0, arpCapable: true},
	layers.LinkTypeNull:      {l3: 4, family: true},
	layers.LinkTypeLoop:      {l3: 4, family: true},
	layers.LinkTypeRaw:       {l3: 0, rawIP: true},
	layers.LinkTypeIPv4:      {l3: 0, rawIP: true},
	layers.LinkTypeIPv6:      {l3: 0, rawIP: true},
}

// Lexer and parser.

func lex(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '!':
			toks = append(toks, "not")
			i++
		case strings.HasPrefix(s[i:], "&&"):
			toks = append(toks, "and")
			i += 2
		case strings.HasPrefix(s[i:], "||"):
			toks = append(toks, "or")
			i += 2
		default:
			j := i
			for j < len(s) && !unicode.IsSpace(rune(s[j])) && !strings.ContainsRune("()!&|", rune(s[j])) {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected %q", s[i:])
			}
			toks = append(toks, strings.ToLower(s[i:j]))
			i = j
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("empty expression")
	}
	return toks, nil
}

type nodeKind int

const (
	nAnd nodeKind = iota
	nOr
	nNot
	nTest // load + compare
	nTrue
)

// node is an expression tree; nTest nodes carry a short instruction
// sequence (loads) followed by one comparison.
type node struct {
	kind  nodeKind
	l, r  *node
	loads []bpf.Instruction
	cond  bpf.JumpTest
	val   uint32
}

func and(a, b *node) *node { return &node{kind: nAnd, l: a, r: b} }
func or(a, b *node) *node  { return &node{kind: nOr, l: a, r: b} }
func not(a *node) *node    { return &node{kind: nNot, l: a} }
func test(cond bpf.JumpTest, val uint32, loads ...bpf.Instruction) *node {
	return &node{kind: nTest, loads: loads, cond: cond, val: val}
}

func anyOf(ns ...*node) *node {
	n := ns[0]
	for _, m := range ns[1:] {
		n = or(n, m)
	}
	return n
}

func allOf(ns ...*node) *node {
	n := ns[0]
	for _, m := range ns[1:] {
		n = and(n, m)
	}
	return n
}

type qual struct{ proto, dir, typ string }

type parser struct {
	toks []string
	pos  int
	link linkLayout
	last qual // qualifiers of the last primitive, for bare values
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *parser) expr() (*node, error) {
	n, err := p.term()
	for err == nil && p.peek() == "or" {
		p.next()
		var m *node
		if m, err = p.term(); err == nil {
			n = or(n, m)
		}
	}
	return n, err
}

func (p *parser) term() (*node, error) {
	n, err := p.factor()
	for err == nil && p.peek() == "and" {
		p.next()
		var m *node
		if m, err = p.factor(); err == nil {
			n = and(n, m)
		}
	}
	return n, err
}

func (p *parser) factor() (*node, error) {
	switch p.peek() {
	case "not":
		p.next()
		n, err := p.factor()
		if err != nil {
			return nil, err
		}
		return not(n), nil
	case "(":
		p.next()
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return n, nil
	case "":
		return nil, fmt.Errorf("unexpected end of expression")
	}
	return p.primitive()
}

var protoWords = map[string]bool{"ip": true, "ip6": true, "tcp": true, "udp": true, "icmp": true, "icmp6": true, "arp": true}

func (p *parser) primitive() (*node, error) {
	var q qual
	if protoWords[p.peek()] {
		q.proto = p.next()
	}
	switch p.peek() {
	case "src", "dst":
		q.dir = p.next()
		if w := p.peek(); (w == "or" || w == "and") && p.pos+1 < len(p.toks) && (p.toks[p.pos+1] == "src" || p.toks[p.pos+1] == "dst") {
			p.next()
			p.next()
			if w == "or" {
				q.dir = "src or dst"
			} else {
				q.dir = "src and dst"
			}
		}
	}
	switch p.peek() {
	case "host", "net", "port":
		q.typ = p.next()
	}
	if q.typ == "" {
		if q.dir != "" {
			q.typ = "host"
		} else if q.proto != "" {
			p.last = qual{proto: q.proto}
			return p.protoNode(q.proto)
		} else if p.last.typ != "" {
			q = p.last // bare value: "host a or b"
		} else {
			return nil, fmt.Errorf("unknown word %q", p.peek())
		}
	}
	if q.dir == "" {
		q.dir = "src or dst"
	}
	p.last = q
	v := p.next()
	if v == "" || v == "and" || v == "or" || v == ")" {
		return nil, fmt.Errorf("%s: missing value", q.typ)
	}
	switch q.typ {
	case "host":
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("host %q: want an IP address (no name lookup)", v)
		}
		return p.netNode(q, netip.PrefixFrom(a, a.BitLen()))
	case "net":
		pf, err := parseNet(v, p)
		if err != nil {
			return nil, err
		}
		return p.netNode(q, pf)
	default:
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: want a number 0-65535", v)
		}
		return p.portNode(q, uint32(n))
	}
}

func parseNet(v string, p *parser) (netip.Prefix, error) {
	if p.peek() == "mask" {
		p.next()
		a, err1 := netip.ParseAddr(v)
		m, err2 := netip.ParseAddr(p.next())
		if err1 != nil || err2 != nil || !a.Is4() || !m.Is4() {
			return netip.Prefix{}, fmt.Errorf("net %s mask: want IPv4 address and mask", v)
		}
		mb := m.As4()
		bits := 0
		for _, b := range mb {
			for i := 7; i >= 0 && b&(1<<i) != 0; i-- {
				bits++
			}
		}
		return netip.PrefixFrom(a, bits).Masked(), nil
	}
	if pf, err := netip.ParsePrefix(v); err == nil {
		return pf.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("net %q: want CIDR", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Building blocks.

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
	etherRARP = 0x8035
)

func ldb(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: 1} }
func ldh(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: 2} }
func ldw(off uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: 4} }

func (p *parser) ethertype(t uint32) *node {
	l := p.link
	switch {
	case l.rawIP:
		switch t {
		case etherIPv4:
			return test(bpf.JumpEqual, 0x40, ldb(0), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		case etherIPv6:
			return test(bpf.JumpEqual, 0x60, ldb(0), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		}
		return test(bpf.JumpEqual, 0xffffffff, ldb(0)) // never
	case l.family:
		var fams []uint32
		switch t {
		case etherIPv4:
			fams = []uint32{2}
		case etherIPv6:
			fams = []uint32{24, 28, 30}
		default:
			return test(bpf.JumpEqual, 0xffffffff, ldw(0))
		}
		var ns []*node
		for _, f := range fams {
			ns = append(ns, test(bpf.JumpEqual, f, ldw(0)), test(bpf.JumpEqual, f<<24, ldw(0)))
		}
		return anyOf(ns...)
	}
	return test(bpf.JumpEqual, t, ldh(l.typeOff))
}

func (p *parser) ipProto(v4, v6 uint32) *node {
	l3 := p.link.l3
	return or(and(p.ethertype(etherIPv4), test(bpf.JumpEqual, v4, ldb(l3+9))),
		and(p.ethertype(etherIPv6), test(bpf.JumpEqual, v6, ldb(l3+6))))
}

func (p *parser) protoNode(proto string) (*node, error) {
	switch proto {
	case "ip":
		return p.ethertype(etherIPv4), nil
	case "ip6":
		return p.ethertype(etherIPv6), nil
	case "tcp":
		return p.ipProto(6, 6), nil
	case "udp":
		return p.ipProto(17, 17), nil
	case "icmp":
		return and(p.ethertype(etherIPv4), test(bpf.JumpEqual, 1, ldb(p.link.l3+9))), nil
	case "icmp6":
		return and(p.ethertype(etherIPv6), test(bpf.JumpEqual, 58, ldb(p.link.l3+6))), nil
	case "arp":
		if !p.link.arpCapable {
			return test(bpf.JumpEqual, 0xffffffff, ldb(0)), nil
		}
		return p.ethertype(etherARP), nil
	}
	return nil, fmt.Errorf("unknown protocol %q", proto)
}

// match compares the len(want)-byte address at off under the prefix mask.
func match(off uint32, pf netip.Prefix) *node {
	addr := pf.Addr().AsSlice()
	bits := pf.Bits()
	var ns []*node
	for i := 0; i < len(addr) && bits > 0; i += 4 {
		w := uint32(addr[i])<<24 | uint32(addr[i+1])<<16 | uint32(addr[i+2])<<8 | uint32(addr[i+3])
		n := min(bits, 32)
		bits -= n
		mask := uint32(0xffffffff) << (32 - n)
		loads := []bpf.Instruction{ldw(off + uint32(i))}
		if mask != 0xffffffff {
			loads = append(loads, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
		}
		ns = append(ns, test(bpf.JumpEqual, w&mask, loads...))
	}
	if len(ns) == 0 {
		return &node{kind: nTrue}
	}
	return allOf(ns...)
}

func dirNode(dir string, src, dst *node) *node {
	switch dir {
	case "src":
		return src
	case "dst":
		return dst
	case "src and dst":
		return and(src, dst)
	}
	return or(src, dst)
}

func (p *parser) netNode(q qual, pf netip.Prefix) (*node, error) {
	l3 := p.link.l3
	if q.proto != "" && q.proto != "ip" && q.proto != "ip6" && q.proto != "arp" {
		return nil, fmt.Errorf("%s %s: host/net qualifier must be ip, ip6 or arp", q.proto, q.typ)
	}
	if pf.Addr().Is4() {
		ip := and(p.ethertype(etherIPv4), dirNode(q.dir, match(l3+12, pf), match(l3+16, pf)))
		if q.proto == "ip" || !p.link.arpCapable {
			return ip, nil
		}
		arp := func(t uint32) *node {
			return and(p.ethertype(t), dirNode(q.dir, match(l3+14, pf), match(l3+24, pf)))
		}
		if q.proto == "arp" {
			return arp(etherARP), nil
		}
		return anyOf(ip, arp(etherARP), arp(etherRARP)), nil
	}
	if q.proto == "ip" || q.proto == "arp" {
		return nil, fmt.Errorf("%s %s: IPv6 address", q.proto, q.typ)
	}
	return and(p.ethertype(etherIPv6), dirNode(q.dir, match(l3+8, pf), match(l3+24, pf))), nil
}

func (p *parser) portNode(q qual, port uint32) (*node, error) {
	l3 := p.link.l3
	var protos []uint32
	switch q.proto {
	case "":
		protos = []uint32{6, 17, 132}
	case "tcp":
		protos = []uint32{6}
	case "udp":
		protos = []uint32{17}
	default:
		return nil, fmt.Errorf("%s port: want tcp or udp", q.proto)
	}
	anyProto := func(off uint32) *node {
		var ns []*node
		for _, pr := range protos {
			ns = append(ns, test(bpf.JumpEqual, pr, ldb(off)))
		}
		return anyOf(ns...)
	}
	// IPv4: not a later fragment, then the ports after the header
	// length held in X.
	ind := func(off uint32) bpf.Instruction { return bpf.LoadIndirect{Off: l3 + off, Size: 2} }
	msh := bpf.LoadMemShift{Off: l3}
	v4 := allOf(p.ethertype(etherIPv4), anyProto(l3+9),
		not(test(bpf.JumpBitsSet, 0x1fff, ldh(l3+6))),
		dirNode(q.dir, test(bpf.JumpEqual, port, msh, ind(0)), test(bpf.JumpEqual, port, msh, ind(2))))
	v6 := allOf(p.ethertype(etherIPv6), anyProto(l3+6),
		dirNode(q.dir, test(bpf.JumpEqual, port, ldh(l3+40)), test(bpf.JumpEqual, port, ldh(l3+42))))
	return or(v4, v6), nil
}

// Code generation with symbolic labels.

type label int

type item struct {
	ins   bpf.Instruction
	jump  bool
	cond  bpf.JumpTest
	val   uint32
	t, f  label
	place label // > 0: a label, not an instruction
}

type gen struct {
	items  []item
	labels int
}

func (g *gen) label() label           { g.labels++; return label(g.labels) }
func (g *gen) place(l label)          { g.items = append(g.items, item{place: l}) }
func (g *gen) emit(i bpf.Instruction) { g.items = append(g.items, item{ins: i}) }

func (g *gen) node(n *node, t, f label) {
	switch n.kind {
	case nTrue:
		g.items = append(g.items, item{jump: true, cond: bpf.JumpEqual, val: 0, t: t, f: t})
	case nAnd:
		mid := g.label()
		g.node(n.l, mid, f)
		g.place(mid)
		g.node(n.r, t, f)
	case nOr:
		mid := g.label()
		g.node(n.l, t, mid)
		g.place(mid)
		g.node(n.r, t, f)
	case nNot:
		g.node(n.l, f, t)
	case nTest:
		for _, i := range n.loads {
			g.emit(i)
		}
		g.items = append(g.items, item{jump: true, cond: n.cond, val: n.val, t: t, f: f})
	}
}

func (g *gen) resolve() ([]bpf.Instruction, error) {
	at := make(map[label]int)
	n := 0
	for _, it := range g.items {
		if it.place > 0 {
			at[it.place] = n
		} else {
			n++
		}
	}
	out := make([]bpf.Instruction, 0, n)
	for _, it := range g.items {
		if it.place > 0 {
			continue
		}
		if !it.jump {
			out = append(out, it.ins)
			continue
		}
		pc := len(out) + 1
		st, sf := at[it.t]-pc, at[it.f]-pc
		if st < 0 || sf < 0 || st > 255 || sf > 255 {
			return nil, fmt.Errorf("expression too large for BPF jumps")
		}
		out = append(out, bpf.JumpIf{Cond: it.cond, Val: it.val, SkipTrue: uint8(st), SkipFalse: uint8(sf)})
	}
	if len(out) > maxBPFInstructions {
		return nil, fmt.Errorf("program of %d instructions, more than %d", len(out), maxBPFInstructions)
	}
	return out, nil
}

// maxBPFInstructions is the kernel's BPF_MAXINSNS.
const maxBPFInstructions = 4096
