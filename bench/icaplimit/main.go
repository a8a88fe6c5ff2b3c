// Command icaplimit is the ceiling for bench/icapvs: the least work a
// server can do and still answer icapbench's requests correctly, so that
// icapd's and c-icap's figures can be quoted as a fraction of what this
// machine, with this load generator on the same cores, allows at all.
//
// It is not an ICAP server. Per connection it reads the ICAP header up to
// the empty line, takes the encapsulated section's offsets, and then
//
//   - OPTIONS: writes a canned 200;
//   - a request with a preview that ends without ieof: answers a canned 204
//     (what an echo service that inspects the preview does);
//   - anything else: streams the encapsulated HTTP response header and the
//     chunked body straight back as a 200, walking the chunk sizes only to
//     find where the body ends. Chunk data of spliceMin bytes and more that
//     is not yet buffered goes from the socket back to the socket with
//     splice(2) through a pipe (net.TCPConn.ReadFrom of itself; Go sizes
//     its pipes to 1 MB), so large bodies never enter user space: that is
//     the least a server can do with them, and icapd does the same (the
//     socket is corked meanwhile, so the small writes around the data do
//     not leave as segments of their own). With -copy they are copied
//     through a 64 KB buffer instead (the ceiling of a server that
//     copies, as c-icap does).
//
// No header is parsed into a map, nothing is validated, nothing is logged:
// whatever a real server does beyond this is protocol work. Usage:
//
//	go run ./bench/icaplimit -listen 127.0.0.1:11345
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:1345", "address to listen on (loopback)")
	flag.BoolVar(&cork, "cork", true, "set TCP_CORK from a spliced chunk's size line to the end of the response, so that the small writes leave with the data")
	flag.BoolVar(&copyLarge, "copy", false, "copy large chunks through user space instead of splicing them")
	sndbuf := flag.Int("sndbuf", 0, "SO_SNDBUF of accepted connections (0: the kernel's autotuning)")
	rcvbuf := flag.Int("rcvbuf", 0, "SO_RCVBUF of accepted connections (0: the kernel's autotuning)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		if tc, ok := c.(*net.TCPConn); ok {
			if *sndbuf > 0 {
				tc.SetWriteBuffer(*sndbuf)
			}
			if *rcvbuf > 0 {
				tc.SetReadBuffer(*rcvbuf)
			}
		}
		go serve(c)
	}
}

// spliceMin is the smallest rest of a chunk that is spliced rather than
// copied (icapd splices rests of its 32 KB read buffer and more).
const spliceMin = 32 << 10

// copyLarge turns splicing off (-copy).
var copyLarge bool

// cork sets TCP_CORK from a spliced chunk's size line to the end of the
// response (-cork): the size line, the chunk end and the last chunk leave
// with the data instead of as segments of their own.
var cork bool

func setCork(tc *net.TCPConn, v int) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v) })
}

const (
	optionsAnswer = "ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nISTag: \"limit\"\r\nEncapsulated: null-body=0\r\n\r\n"
	noContent     = "ICAP/1.0 204 No Content\r\nISTag: \"limit\"\r\nEncapsulated: null-body=0\r\n\r\n"
)

func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	var tc *net.TCPConn
	if t, ok := c.(*net.TCPConn); ok && !copyLarge {
		tc = t
	}
	for {
		if err := transaction(r, w, tc); err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("icaplimit: %v", err)
			}
			return
		}
	}
}

// transaction answers one request; with tc, large chunks are spliced.
func transaction(r *bufio.Reader, w *bufio.Writer, tc *net.TCPConn) error {
	var method string
	var encap string
	preview := false
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			method, _, _ = strings.Cut(string(line), " ")
			continue
		}
		if len(line) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		switch {
		case bytes.EqualFold(name, []byte("Encapsulated")):
			encap = string(bytes.TrimSpace(value))
		case bytes.EqualFold(name, []byte("Preview")):
			preview = true
		}
	}
	if method == "OPTIONS" {
		w.WriteString(optionsAnswer)
		return w.Flush()
	}
	hdrStart, bodyStart, err := offsets(encap)
	if err != nil {
		return err
	}
	// The encapsulated headers: skip the request header, keep the response's.
	if _, err := r.Discard(hdrStart); err != nil {
		return err
	}
	hdr := make([]byte, bodyStart-hdrStart)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return err
	}
	if preview {
		ieof, err := skipChunks(r, nil, nil)
		if err != nil {
			return err
		}
		if !ieof {
			w.WriteString(noContent)
			return w.Flush()
		}
	}
	fmt.Fprintf(w, "ICAP/1.0 200 OK\r\nISTag: \"limit\"\r\nEncapsulated: res-hdr=0, res-body=%d\r\n\r\n", len(hdr))
	w.Write(hdr)
	if _, err := skipChunks(r, w, tc); err != nil {
		return err
	}
	return w.Flush()
}

// offsets returns where the encapsulated response header and body start.
func offsets(encap string) (hdr, body int, err error) {
	for _, f := range strings.Split(encap, ",") {
		name, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, fmt.Errorf("parse Encapsulated %q: %w", encap, err)
		}
		switch name {
		case "res-hdr":
			hdr = n
		case "res-body", "req-body":
			body = n
		}
	}
	return hdr, body, nil
}

// skipChunks walks a chunked body up to its last chunk, copying it to w
// when w is not nil, and reports whether the last chunk carried ieof.
// With tc (r's and w's connection), the unbuffered rest of a large chunk
// is spliced from tc to tc.
func skipChunks(r *bufio.Reader, w *bufio.Writer, tc *net.TCPConn) (ieof bool, err error) {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		size, ext, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil {
			return false, fmt.Errorf("chunk size %q: %w", line, err)
		}
		if n == 0 {
			if w != nil {
				w.WriteString("0\r\n\r\n")
			}
			// trailers end with an empty line
			for {
				t, err := r.ReadSlice('\n')
				if err != nil {
					return false, err
				}
				if len(t) <= 2 {
					return bytes.Contains(ext, []byte("ieof")), nil
				}
			}
		}
		if w != nil && tc != nil && n-int64(r.Buffered()) >= spliceMin {
			if cork {
				setCork(tc, 1)
				defer setCork(tc, 0)
			}
			w.Write(line)
			k := int64(r.Buffered())
			if _, err := io.CopyN(w, r, k); err != nil {
				return false, err
			}
			if err := w.Flush(); err != nil {
				return false, err
			}
			if m, err := tc.ReadFrom(io.LimitReader(tc, n-k)); err != nil || m < n-k {
				return false, fmt.Errorf("splice %d of %d bytes: %v", m, n-k, err)
			}
			if _, err := io.CopyN(w, r, 2); err != nil {
				return false, err
			}
		} else if w != nil {
			w.Write(line)
			if _, err := io.CopyN(w, r, n+2); err != nil {
				return false, err
			}
		} else if _, err := r.Discard(int(n) + 2); err != nil {
			return false, err
		}
	}
}
