package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// DefaultSnapLen is the snap length filters accept packets with, and the
// live capture frame size.
const DefaultSnapLen = 262144

// Filter is a compiled capture filter in tcpdump syntax: a classic BPF
// program, set in the kernel for live capture (afpacket.SetBPF) and run in
// the x/net/bpf virtual machine for files, so both see the same program.
type Filter struct {
	Expr     string
	Compiler string // "tcpdump" or "builtin"
	Raw      []bpf.RawInstruction
	vm       *bpf.VM
}

// ErrFilter is wrapped by every filter compilation error.
var ErrFilter = errors.New("capture: filter")

// CompileFilter compiles expr for packets of link type lt. It uses
// `tcpdump -dd` when tcpdump is installed (all of tcpdump's syntax), and
// the built-in compiler otherwise (see CompileBuiltin for the subset). An
// empty expr returns nil, nil: no filter.
func CompileFilter(expr string, lt layers.LinkType) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	if path, err := exec.LookPath("tcpdump"); err == nil {
		return CompileTcpdump(path, expr, lt)
	}
	return CompileBuiltin(expr, lt)
}

func newFilter(expr, compiler string, raw []bpf.RawInstruction) (*Filter, error) {
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		return nil, fmt.Errorf("%w %q: program uses instructions the user-space VM lacks", ErrFilter, expr)
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	return &Filter{Expr: expr, Compiler: compiler, Raw: raw, vm: vm}, nil
}

// Match runs the program on a captured frame and reports whether it is
// accepted.
func (f *Filter) Match(data []byte, wireLen int) bool {
	n, err := f.vm.Run(data)
	return err == nil && n > 0
}

// CompileTcpdump compiles expr with the tcpdump program at path (`tcpdump
// -dd`, reading a header-only capture file of link type lt so that no
// interface is needed).
func CompileTcpdump(path, expr string, lt layers.LinkType) (*Filter, error) {
	dir, err := os.MkdirTemp("", "spand-filter")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	defer os.RemoveAll(dir)
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], DefaultSnapLen)
	binary.LittleEndian.PutUint32(hdr[20:], uint32(lt))
	empty := filepath.Join(dir, "empty.pcap")
	if err := os.WriteFile(empty, hdr, 0o600); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	cmd := exec.Command(path, "-r", empty, "-dd", expr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w %q: tcpdump: %s", ErrFilter, expr, strings.TrimSpace(stderr.String()))
	}
	raw, err := parseDD(out)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrFilter, expr, err)
	}
	return newFilter(expr, "tcpdump", raw)
}

// parseDD parses `tcpdump -dd` output: one "{ code, jt, jf, k }," a line.
func parseDD(out []byte) ([]bpf.RawInstruction, error) {
	var raw []bpf.RawInstruction
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.Trim(strings.TrimSpace(sc.Text()), "{},")
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("bad tcpdump -dd line %q", sc.Text())
		}
		var v [4]uint64
		for i, s := range f {
			n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
			if err != nil {
				return nil, fmt.Errorf("bad tcpdump -dd line %q: %v", sc.Text(), err)
			}
			v[i] = n
		}
		if v[1] > 255 || v[2] > 255 || v[0] > 0xffff {
			return nil, fmt.Errorf("bad tcpdump -dd line %q", sc.Text())
		}
		raw = append(raw, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(raw) == 0 {
		return nil, errors.New("tcpdump printed no program")
	}
	return raw, nil
}
