package icap

import (
	"bufio"
	"time"
)

// SetClientClock replaces the client's clock, for tests of time-based
// behaviour without waiting.
func SetClientClock(c *Client, now func() time.Time) { c.now = now }

// Parser is the server's per-connection parser state, for benchmarks
// of parsing as the server does it (scratch buffers and the last ICAP
// URI reused from one request to the next).
type Parser struct{ p parser }

// ReadRequestWith parses like the server's connection loop with default
// limits.
func ReadRequestWith(br *bufio.Reader, p *Parser) (*Request, error) {
	return readRequest(br, limits{DefaultMaxHeaderBytes, DefaultMaxHTTPHeaderBytes}, &p.p, nil)
}

// Block is a request block as the server pools them.
type Block struct{ b requestBlock }

// ReadRequestInto parses like ReadRequestWith into a block used before.
func ReadRequestInto(br *bufio.Reader, p *Parser, blk *Block) (*Request, error) {
	return readRequest(br, limits{DefaultMaxHeaderBytes, DefaultMaxHTTPHeaderBytes}, &p.p, &blk.b)
}

// Reset prepares the block for the next request, as the server does.
func (blk *Block) Reset() { blk.b.reset() }
