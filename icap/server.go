package icap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for the zero values of Server fields.
const (
	DefaultAddr               = "127.0.0.1:1344"
	DefaultReadHeaderTimeout  = 30 * time.Second
	DefaultReadTimeout        = 5 * time.Minute
	DefaultWriteTimeout       = 5 * time.Minute
	DefaultIdleTimeout        = 5 * time.Minute
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultMaxHTTPHeaderBytes = 256 << 10
	DefaultMaxConns           = 16384
	DefaultMaxDrainBytes      = 4 << 20
	// DefaultISTag is the ISTag of responses that belong to no service
	// (errors before routing) when Server.ISTag is empty.
	DefaultISTag = `"edgeadapt-1"`
	// bufferSize is the size of the pooled per-connection read and write
	// buffers, held only while a transaction is in progress.
	bufferSize = 32 << 10
)

// A Handler responds to an ICAP request.
//
// ServeICAP should write the response with the ResponseWriter and return.
// If it returns without writing anything, the server answers as if
// NoModification had been called (204, 206 or an unchanged echo, as the
// client allows): adaptation fails open. A panic is recovered: the client
// gets a 500 if nothing was written yet, else the connection is closed.
type Handler interface {
	ServeICAP(ResponseWriter, *Request)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ResponseWriter, *Request)

// ServeICAP calls f(w, r).
func (f HandlerFunc) ServeICAP(w ResponseWriter, r *Request) { f(w, r) }

// ConnState is the state of a server connection, for Server.ConnState.
type ConnState int

// Connection states.
const (
	StateNew ConnState = iota
	StateActive
	StateIdle
	StateClosed
)

var connStateNames = [...]string{"new", "active", "idle", "closed"}

func (c ConnState) String() string { return connStateNames[c] }

// TransactionInfo describes one finished ICAP transaction, for
// Server.Observer: access logs and metrics.
type TransactionInfo struct {
	Start      time.Time
	Duration   time.Duration
	Method     string // as received, "" if the request line was unreadable
	Service    string // ICAP URI path, e.g. "/echo"
	Status     int    // ICAP status sent; 0 if the request broke off and no answer was possible
	BytesIn    int64  // bytes of the ICAP request read from the connection
	BytesOut   int64  // bytes of the ICAP response written
	RemoteAddr string
	ClientIP   string // X-Client-IP
	Preview    int    // Preview size, -1 without preview
	Continued  bool   // a 100 Continue was sent
	Err        error  // why the server answered an error itself, or a write error
}

// Server is an ICAP server. The zero value is a valid configuration:
// every limit falls back to its Default... constant.
type Server struct {
	// Addr is the TCP address to listen on; DefaultAddr if empty.
	Addr string
	// Handler answers requests; a Server with a nil Handler answers 404.
	Handler Handler
	// TLSConfig configures ICAPS for ListenAndServeTLS and ServeTLS.
	TLSConfig *tls.Config

	// ReadHeaderTimeout bounds reading the ICAP header and the
	// encapsulated HTTP headers, from the request's first byte.
	// A timeout is answered with 408.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds each read of body data (inactivity, not total
	// time, so that long streams work).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write (inactivity).
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a persistent
	// connection. The deadline is renewed only when less than 3/4 of it
	// is left, so that a busy connection costs no timer update per
	// request: an idle connection closes after between 3/4 of
	// IdleTimeout and IdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits the ICAP header (request line and fields).
	MaxHeaderBytes int
	// MaxHTTPHeaderBytes limits each encapsulated HTTP header section.
	MaxHTTPHeaderBytes int
	// MaxConns limits concurrent connections; a request on a connection
	// over the limit is answered with 503 and the connection closed.
	MaxConns int
	// MaxDrainBytes is how much unread request body the server reads and
	// discards after an early response to keep the connection; with more
	// left, it closes the connection instead.
	MaxDrainBytes int64
	// ISTag is sent on responses the server makes before any service is
	// chosen (400, 404, 501...); DefaultISTag if empty.
	ISTag string

	// Logger receives protocol errors and recovered panics; slog.Default
	// if nil.
	Logger *slog.Logger
	// ConnState, if set, is called when a connection changes state.
	ConnState func(net.Conn, ConnState)
	// Observer, if set, is called once per transaction after the response
	// has been written, including the responses the server makes itself.
	// It runs on the connection's goroutine: keep it fast. The
	// TransactionInfo is valid only during the call (it is reused).
	Observer func(*TransactionInfo)

	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	inShutdown atomic.Bool
	nconns     atomic.Int64
	baseCtx    context.Context
	cancelCtx  context.CancelFunc
}

func (s *Server) readHeaderTimeout() time.Duration {
	return orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
}
func (s *Server) readTimeout() time.Duration  { return orDefault(s.ReadTimeout, DefaultReadTimeout) }
func (s *Server) writeTimeout() time.Duration { return orDefault(s.WriteTimeout, DefaultWriteTimeout) }
func (s *Server) idleTimeout() time.Duration  { return orDefault(s.IdleTimeout, DefaultIdleTimeout) }
func (s *Server) maxConns() int64             { return int64(orDefault(s.MaxConns, DefaultMaxConns)) }
func (s *Server) maxDrain() int64             { return orDefault(s.MaxDrainBytes, DefaultMaxDrainBytes) }
func (s *Server) limits() limits {
	return limits{orDefault(s.MaxHeaderBytes, DefaultMaxHeaderBytes), orDefault(s.MaxHTTPHeaderBytes, DefaultMaxHTTPHeaderBytes)}
}
func (s *Server) istag() string {
	if s.ISTag != "" {
		return s.ISTag
	}
	return DefaultISTag
}
func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func orDefault[T int | int64 | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// ListenAndServe listens on s.Addr and serves ICAP.
func (s *Server) ListenAndServe() error {
	ln, err := s.listen()
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

func (s *Server) listen() (net.Listener, error) {
	if s.inShutdown.Load() {
		return nil, ErrServerClosed
	}
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("icap: listen %s: %w", addr, err)
	}
	return ln, nil
}

// ListenAndServeTLS listens on s.Addr and serves ICAPS with the given
// certificate and key files (or s.TLSConfig's certificates if both are
// empty).
func (s *Server) ListenAndServeTLS(certFile, keyFile string) error {
	ln, err := s.listen()
	if err != nil {
		return err
	}
	return s.ServeTLS(ln, certFile, keyFile)
}

// ServeTLS serves ICAPS on ln.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	cfg := &tls.Config{}
	if s.TLSConfig != nil {
		cfg = s.TLSConfig.Clone()
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("icap: load TLS key pair: %w", err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		ln.Close()
		return errors.New("icap: ServeTLS: no certificate")
	}
	return s.Serve(tls.NewListener(ln, cfg))
}

// Serve accepts connections on ln and serves each on its own goroutine.
// It returns ErrServerClosed after Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	if !s.trackListener(&ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(&ln, false)
	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				s.logger().Warn("icap: accept error; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("icap: accept: %w", err)
		}
		delay = 0
		c := s.newConn(rw)
		over := s.nconns.Add(1) > s.maxConns()
		if !s.trackConn(c, true) {
			s.nconns.Add(-1)
			rw.Close()
			continue
		}
		go c.serve(over)
	}
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		if s.listeners == nil {
			s.listeners = make(map[*net.Listener]struct{})
		}
		s.listeners[ln] = struct{}{}
		return true
	}
	delete(s.listeners, ln)
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.conns == nil {
			s.conns = make(map[*conn]struct{})
		}
		if s.baseCtx == nil {
			s.baseCtx, s.cancelCtx = context.WithCancel(context.Background())
		}
		c.ctx = s.baseCtx
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	return true
}

// Shutdown stops the server gracefully, as net/http's does: it closes the
// listeners and the idle connections, lets in-flight transactions finish
// and waits until all connections are closed or ctx is done (then it
// returns ctx.Err(); Close ends what is left). A response written during
// the shutdown carries "Connection: close" and its connection closes after
// it. A request already read (pipelined, or arriving as the shutdown
// begins) is served the same way, never answered 503, and a connection
// closed while idle is closed before any byte of a response: a client
// such as Squid retries a request on a reused connection closed so, or
// bypasses the service. Serve returns ErrServerClosed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	err := s.closeListenersLocked()
	s.mu.Unlock()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		if s.closeIdleConns() {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// Close closes the listeners and all connections immediately.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.closeListenersLocked()
	for c := range s.conns {
		c.rwc.Close()
	}
	if s.cancelCtx != nil {
		s.cancelCtx()
	}
	return err
}

func (s *Server) closeListenersLocked() error {
	var err error
	for ln := range s.listeners {
		if cerr := (*ln).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// closeIdleConns closes idle connections and reports whether none remain.
func (s *Server) closeIdleConns() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	quiet := true
	for c := range s.conns {
		// A connection whose request has arrived but whose goroutine has
		// not yet run (a loaded machine can take milliseconds) is left to
		// that goroutine, which serves the request with "Connection:
		// close": closing it here would reset a request the client
		// already sent, and Squid fails a RESPMOD whose preview it has
		// sent instead of retrying it.
		if c.waiter != nil && c.state.Load() == int32(StateIdle) && c.waiter.pending() {
			quiet = false
			continue
		}
		if c.state.CompareAndSwap(int32(StateIdle), int32(StateClosed)) {
			c.rwc.Close()
		}
		quiet = false
	}
	return quiet
}

// NumConns returns the number of open connections.
func (s *Server) NumConns() int { return int(s.nconns.Load()) }

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferSize) }}
)

// conn is one server connection.
type conn struct {
	srv        *Server
	rwc        net.Conn
	waiter     *readWaiter // waits for readability while idle; nil for TLS
	remoteAddr string
	tlsState   *tls.ConnectionState
	ctx        context.Context
	state      atomic.Int32

	br *bufio.Reader
	bw *bufio.Writer

	// pending holds the byte read while idle, before br was attached.
	pending    byte
	hasPending bool

	// counters of raw bytes, for TransactionInfo
	nread, nwritten int64

	// Deadline management, so that a transaction usually costs no timer
	// update: readDeadline and writeDeadline are the deadlines set on the
	// socket. In body phase each read or write extends its deadline
	// lazily (extendDeadline). Between requests the idle deadline is
	// renewed only when less than 3/4 of IdleTimeout is left. The header
	// deadline (headerDeadline, pending while headerPending) is set only
	// if reading the header has to wait: not for the first read after
	// the poller reported data (freshData).
	bodyPhase      bool
	readDeadline   time.Time
	writeDeadline  time.Time
	headerDeadline time.Time
	headerPending  bool
	freshData      bool

	// flushBeforeRead makes the reader flush pending output before it
	// blocks on the socket: output is batched while input is available
	// and sent as soon as the server would wait.
	flushBeforeRead bool
	// linger asks for a lingering close: the client may still be sending
	// a request we answered early with an error.
	linger bool
	// idleLimit, if set, replaces the idle timeout (overloaded connections).
	idleLimit time.Duration

	// Clock readings are costly (100-400 ns each on a loaded VM, a fifth
	// of an OPTIONS): a transaction reads the clock when it starts, at
	// each deadline check of body reads and writes, and when it ends.
	// now is the latest reading of the transaction (for the Date
	// header: stale at most by the CPU time of the handler since its
	// last I/O), lastEnd the end of the last transaction (for the idle
	// deadline that follows at once).
	now, lastEnd time.Time

	p       parser
	info    TransactionInfo  // of the transaction in progress, for the Observer
	drain   io.LimitedReader // for finish, so that draining allocates nothing
	scratch []byte
	head    []byte
	resp    response
	// sendContinue is c.resp.sendContinue, bound once.
	sendContinue func() error
}

func (s *Server) newConn(rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc, remoteAddr: rwc.RemoteAddr().String()}
	c.sendContinue = c.resp.sendContinue // once per connection, not per request
	if sc, ok := rwc.(syscall.Conn); ok && canWaitReadable {
		if raw, err := sc.SyscallConn(); err == nil {
			c.waiter = newReadWaiter(raw)
		}
	}
	c.setState(StateNew)
	return c
}

func (c *conn) setState(st ConnState) {
	c.state.Store(int32(st))
	if h := c.srv.ConnState; h != nil {
		h(c.rwc, st)
	}
}

// Read implements io.Reader for the connection's bufio.Reader.
func (c *conn) Read(p []byte) (int, error) {
	if c.hasPending {
		c.hasPending = false
		p[0] = c.pending
		c.nread++
		return 1, nil
	}
	if c.flushBeforeRead && c.bw != nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	switch {
	case c.bodyPhase:
		c.now = extendDeadline(c.rwc, &c.readDeadline, c.srv.readTimeout(), true)
	case c.headerPending && c.freshData:
		// The first read after the poller reported data cannot block:
		// the idle deadline still on the socket is as good.
		c.freshData = false
	case c.headerPending:
		c.headerPending = false
		c.setReadDeadline(c.headerDeadline)
	}
	n, err := c.rwc.Read(p)
	c.nread += int64(n)
	return n, err
}

// extendDeadline implements an inactivity timeout cheaply: before each read
// (or write) it pushes the deadline *dl to now+timeout, but only once less
// than three quarters of the timeout is left (or if *dl is further away
// than the timeout), so that most calls cost one clock read and no timer
// update. It returns the time it read.
func extendDeadline(nc net.Conn, dl *time.Time, timeout time.Duration, read bool) time.Time {
	t := time.Now()
	if left := dl.Sub(t); left >= timeout*3/4 && left <= timeout {
		return t
	}
	*dl = t.Add(timeout)
	if read {
		nc.SetReadDeadline(*dl)
	} else {
		nc.SetWriteDeadline(*dl)
	}
	return t
}

// setReadDeadline sets the socket's read deadline and remembers it.
func (c *conn) setReadDeadline(t time.Time) {
	c.readDeadline = t
	c.rwc.SetReadDeadline(t)
}

// Write implements io.Writer for the connection's bufio.Writer.
func (c *conn) Write(p []byte) (int, error) {
	c.now = extendDeadline(c.rwc, &c.writeDeadline, c.srv.writeTimeout(), false)
	n, err := c.rwc.Write(p)
	c.nwritten += int64(n)
	return n, err
}

func (c *conn) attachBuffers() {
	if c.br == nil {
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset(c)
	}
	if c.bw == nil {
		c.bw = writerPool.Get().(*bufio.Writer)
		c.bw.Reset(c)
	}
}

// releaseBuffers returns the buffers to their pools while the connection
// is idle, so that an idle connection costs only its goroutine and conn.
func (c *conn) releaseBuffers() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	if c.bw != nil && c.bw.Buffered() == 0 {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
	if cap(c.scratch) > 4096 {
		c.scratch = nil
	}
	if cap(c.p.line)+cap(c.p.vals) > 8192 || cap(c.p.ents) > 64 {
		c.p = parser{}
	}
	if cap(c.head) > 4096 {
		c.head = nil
	}
}

var errTooManyFiles = errors.New("too many open files")

func (c *conn) serve(overloaded bool) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logger().Error("icap: panic serving connection", "remote", c.remoteAddr, "panic", p, "stack", string(buf))
		}
		if c.linger {
			c.lingeringClose()
		}
		c.rwc.Close()
		c.releaseBuffers()
		c.srv.trackConn(c, false)
		c.srv.nconns.Add(-1)
		c.setState(StateClosed)
	}()
	if tc, ok := c.rwc.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(c.srv.readHeaderTimeout()))
		if err := tc.Handshake(); err != nil {
			c.srv.logger().Info("icap: TLS handshake failed", "remote", c.remoteAddr, "err", err)
			return
		}
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	if overloaded {
		// Over MaxConns: wait for the request (to answer it 503) only as
		// long as for a request header, not a whole idle timeout.
		c.idleLimit = c.srv.readHeaderTimeout()
	}
	for {
		if !c.waitRequest() {
			return
		}
		if !c.serveOne(overloaded) {
			return
		}
		if c.srv.inShutdown.Load() && (c.br == nil || c.br.Buffered() == 0) {
			// After a complete response, nothing pipelined: close, with
			// a lingering close so that a request the client sends at
			// this moment cannot reset the response away.
			c.linger = true
			return
		}
	}
}

// Lingering close limits: after an error answer the server half-closes
// and discards what the client still sends, so that closing with unread
// data does not reset the connection and destroy the answer in flight.
const (
	lingerTimeout = time.Second
	lingerBytes   = 256 << 10
)

func (c *conn) lingeringClose() {
	if c.bw != nil {
		c.bw.Flush()
	}
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.bodyPhase = false // Read must not push the deadline out
	c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	var src io.Reader = c.rwc
	if c.br != nil {
		src = c.br
	}
	io.Copy(io.Discard, io.LimitReader(src, lingerBytes))
}

// waitRequest waits for the first byte of the next request, with the
// buffers released while idle. It reports false if the connection should
// close.
func (c *conn) waitRequest() bool {
	if c.br != nil && c.br.Buffered() > 0 {
		c.setState(StateActive)
		return true // pipelined request already buffered
	}
	if c.bw != nil && c.bw.Buffered() > 0 {
		if c.bw.Flush() != nil {
			return false
		}
	}
	c.releaseBuffers()
	c.setState(StateIdle)
	if c.srv.inShutdown.Load() && (c.waiter == nil || !c.waiter.pending()) {
		// Shutting down and no request here: close. One that has
		// arrived is served (closeIdleConns spares it too).
		return false
	}
	idle := c.srv.idleTimeout()
	if c.idleLimit > 0 {
		idle = c.idleLimit
	}
	now := c.lastEnd // the end of the last transaction, a moment ago
	if now.IsZero() {
		now = time.Now()
	}
	if left := c.readDeadline.Sub(now); left < idle*3/4 || left > idle {
		c.setReadDeadline(now.Add(idle))
	}
	if c.waiter != nil {
		// Wait until the socket is readable without reading into a
		// buffer: no buffer is held while idle.
		if err := c.waiter.wait(); err != nil {
			return false
		}
		c.freshData = true
	} else {
		var one [1]byte
		n, err := c.rwc.Read(one[:])
		if n == 0 || err != nil {
			return false
		}
		c.pending, c.hasPending = one[0], true
	}
	if !c.state.CompareAndSwap(int32(StateIdle), int32(StateActive)) {
		return false // closed by Shutdown
	}
	if h := c.srv.ConnState; h != nil {
		h(c.rwc, StateActive)
	}
	return true
}

// serveOne reads and answers one request. It reports whether the
// connection may serve another.
func (c *conn) serveOne(overloaded bool) (keep bool) {
	s := c.srv
	c.attachBuffers()
	start := time.Now()
	c.now = start
	// The conn's TransactionInfo, reused: it escapes to the Observer,
	// which may use it only during the call.
	info := &c.info
	*info = TransactionInfo{Start: start, RemoteAddr: c.remoteAddr, Preview: -1}
	in0, out0 := c.nread-int64(c.br.Buffered()), c.nwritten+int64(c.bw.Buffered())
	observe := s.Observer != nil
	blk := blockPool.Get().(*requestBlock)
	defer func() {
		end := time.Now()
		c.lastEnd = end
		if observe {
			info.Duration = end.Sub(start)
			info.BytesIn = c.nread - int64(c.br.Buffered()) - in0
			info.BytesOut = c.nwritten + int64(c.bw.Buffered()) - out0
			s.Observer(info)
		}
		// Last: nothing refers to the request any more.
		blk.reset()
		blockPool.Put(blk)
	}()

	c.bodyPhase = false
	c.headerDeadline = start.Add(s.readHeaderTimeout())
	if c.freshData && c.br.Buffered() == 0 {
		c.headerPending = true // set by Read if the header is not all there
	} else {
		c.freshData, c.headerPending = false, false
		c.setReadDeadline(c.headerDeadline)
	}
	req, err := readRequest(c.br, s.limits(), &c.p, blk)
	if req != nil {
		info.Method = req.Method
		if req.URL != nil {
			info.Service = req.URL.Path
		}
		info.Preview = req.Preview
		info.ClientIP = req.ClientIP
	}
	if err != nil {
		if err == io.EOF {
			// The client closed the connection between requests: no
			// transaction, nothing to observe.
			observe = false
			return false
		}
		status := StatusForError(err)
		info.Err = err
		if status == 0 {
			return false // broken off mid-request: observed with Status 0
		}
		if status == StatusBadRequest || status == StatusNotImplemented || status == StatusVersionNotSupported {
			s.logger().Warn("icap: bad request", "remote", c.remoteAddr, "status", status, "err", err)
		}
		info.Status = status
		c.writeError(status, s.istag(), err)
		c.linger = true
		return false
	}
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tlsState
	req.ctx = c.ctx
	if overloaded {
		// (A request read while shutting down is served: its response
		// carries "Connection: close", see writeHeader.)
		info.Err = errOverloaded
		info.Status = StatusServiceUnavailable
		c.writeError(StatusServiceUnavailable, s.istag(), errOverloaded)
		c.linger = true
		return false
	}

	c.bodyPhase = true
	c.headerPending, c.freshData = false, false
	w := &c.resp
	w.reset(c, req)
	if req.body != nil {
		req.body.onContinue = c.sendContinue
	}
	c.flushBeforeRead = true
	panicked := c.runHandler(w, req)
	c.flushBeforeRead = false
	if panicked && w.wroteHeader {
		info.Status = w.code
		info.Err = errPanic
		return false
	}
	if !w.wroteHeader {
		if panicked {
			w.closeAfter = true
			w.writeHeader(StatusInternalServerError, nil, false)
			info.Err = errPanic
		} else if err := NoModification(w, req); err != nil && w.err == nil {
			w.err = err // fail open broke off: do not terminate the body
		}
	}
	keep = w.finish()
	c.linger = !keep && w.err == nil && (w.code >= 400 || s.inShutdown.Load())
	info.Status = w.code
	info.Continued = req.body != nil && req.body.continued
	if w.err != nil {
		info.Err = w.err
	}
	return keep
}

var (
	errOverloaded = errors.New("icap: over MaxConns")
	errPanic      = errors.New("icap: handler panicked")
)

func (c *conn) runHandler(w *response, req *Request) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logger().Error("icap: handler panic", "remote", c.remoteAddr, "service", req.ServicePath(), "panic", p, "stack", string(buf))
		}
	}()
	h := c.srv.Handler
	if h == nil {
		h = notFoundHandler{}
	}
	h.ServeICAP(w, req)
	return false
}

// writeError writes a bodiless error response and flushes it.
func (c *conn) writeError(code int, istag string, err error) {
	bw := c.bw
	bw.WriteString(statusLine(code))
	bw.WriteString("ISTag: ")
	bw.WriteString(istag)
	bw.WriteString("\r\nDate: ")
	bw.WriteString(httpDate())
	bw.WriteString("\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n")
	bw.Flush()
	_ = err
}

type notFoundHandler struct{}

func (notFoundHandler) ServeICAP(w ResponseWriter, r *Request) {
	w.WriteHeader(StatusNotFound, nil, false)
}

type cachedDate struct {
	sec int64
	s   string
}

// dateCache holds the Date header value, formatted once per second.
var dateCache atomic.Pointer[cachedDate]

func httpDate() string { return httpDateAt(time.Now()) }

// httpDateAt is httpDate for a clock reading already made.
func httpDateAt(now time.Time) string {
	sec := now.Unix()
	old := dateCache.Load()
	if old != nil && old.sec == sec {
		return old.s
	}
	d := &cachedDate{sec, now.UTC().Format(http.TimeFormat)}
	if old == nil || sec > old.sec {
		// A reading older than the cached one (a transaction's clock
		// is a little stale) must not move the cache back.
		dateCache.Store(d)
	}
	return d.s
}
