package icap_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/edgeadapt/edgeadapt/icap"
)

// FuzzReadRequest parses arbitrary bytes as an ICAP request and reads its
// body. It must not panic or loop; a parsed request must satisfy the
// Encapsulated rules, and every error must map to a status code.
func FuzzReadRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/requests/*.txt")
	for _, file := range files {
		wire, _ := loadVector(f, file)
		f.Add(wire)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 64)
		r, err := icap.ReadRequest(br)
		if err != nil {
			if st := icap.StatusForError(err); st != 400 && st != 501 && st != 505 && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Fatalf("error %v maps to %d", err, st)
			}
			return
		}
		if r.Method != icap.MethodOPTIONS && !r.Encapsulated.ValidFor(r.Method) {
			t.Fatalf("accepted Encapsulated %q for %s", r.Encapsulated, r.Method)
		}
		if r.Body == nil {
			t.Fatal("nil Body")
		}
		n, _ := io.Copy(io.Discard, r.Body)
		if n > int64(len(in)) {
			t.Fatalf("body of %d bytes from %d bytes of input", n, len(in))
		}
	})
}

// FuzzReadRequestReuse parses two requests with the parser state and the
// request block of a server connection (reused from the first to the
// second) and checks that the second parses exactly as it does fresh:
// nothing of the first leaks into it.
func FuzzReadRequestReuse(f *testing.F) {
	files, _ := filepath.Glob("testdata/requests/*.txt")
	var wires [][]byte
	for _, file := range files {
		wire, _ := loadVector(f, file)
		wires = append(wires, wire)
	}
	for i := range wires {
		f.Add(wires[i], wires[(i+1)%len(wires)])
	}
	parse := func(in []byte, p *icap.Parser, blk *icap.Block) string {
		r, err := icap.ReadRequestInto(bufio.NewReaderSize(bytes.NewReader(in), 64), p, blk)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(r.Body)
		}
		return describe(r, body, err)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var p icap.Parser
		var blk icap.Block
		parse(first, &p, &blk)
		blk.Reset()
		got := parse(second, &p, &blk)
		want := parse(second, new(icap.Parser), new(icap.Block))
		if got != want {
			t.Fatalf("after %q, %q parses as\n%s\nfresh:\n%s", first, second, got, want)
		}
	})
}
