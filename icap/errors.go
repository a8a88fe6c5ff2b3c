package icap

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// Sentinel errors. Errors returned while parsing wrap them, so callers can
// test with errors.Is.
var (
	// ErrHeaderTooLarge: the ICAP header exceeds Server.MaxHeaderBytes, or
	// an encapsulated HTTP header exceeds Server.MaxHTTPHeaderBytes.
	ErrHeaderTooLarge = errors.New("icap: header too large")
	// ErrMalformed: the message violates RFC 3507 syntax.
	ErrMalformed = errors.New("icap: malformed message")
	// ErrBadEncapsulated: the Encapsulated header is missing, malformed,
	// not in RFC 3507 order, or its offsets disagree with the actual
	// lengths of the encapsulated headers.
	ErrBadEncapsulated = errors.New("icap: bad Encapsulated header")
	// ErrUnknownMethod: the method is not OPTIONS, REQMOD or RESPMOD.
	ErrUnknownMethod = errors.New("icap: unknown method")
	// ErrVersion: the version is not ICAP/1.0.
	ErrVersion = errors.New("icap: unsupported ICAP version")
	// ErrBodyNotAllowed: Write was called after WriteHeader said the
	// response has no body.
	ErrBodyNotAllowed = errors.New("icap: response has no body")
	// ErrPreviewOver: the handler tried to read the body past the preview
	// after it had started a response, so it can no longer ask the client
	// for the rest with 100 Continue.
	ErrPreviewOver = errors.New("icap: body read past the preview after the response started")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("icap: Server closed")
	// ErrNotAllowed: a 204 or 206 response the client did not allow.
	ErrNotAllowed = errors.New("icap: response code not allowed by the client")
	// ErrBodyClosed: Read after Close of a request body.
	ErrBodyClosed = errors.New("icap: read on closed body")
)

// ProtocolError is a violation of the ICAP protocol by the peer, with the
// status code the server answers it with.
type ProtocolError struct {
	Status int    // ICAP status to answer with (400, 501, 505...)
	What   string // what was wrong, for the log
	Err    error  // the sentinel it wraps, if any
}

func (e *ProtocolError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("icap: %s: %v", e.What, e.Err)
	}
	return "icap: " + e.What
}

func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(status int, err error, format string, args ...any) error {
	return &ProtocolError{Status: status, What: fmt.Sprintf(format, args...), Err: err}
}

// StatusForError maps an error met while reading a request to the ICAP
// status code the server answers with. It is the one place that does so:
// 400 malformed or too large, 408 timeout, 501 unknown method, 505 bad
// version, 500 anything else. It returns 0 for errors that deserve no
// answer (the peer closed or reset the connection).
func StatusForError(err error) int {
	var pe *ProtocolError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &pe):
		return pe.Status
	case errors.Is(err, ErrUnknownMethod):
		return StatusNotImplemented
	case errors.Is(err, ErrVersion):
		return StatusVersionNotSupported
	case errors.Is(err, ErrHeaderTooLarge), errors.Is(err, ErrMalformed), errors.Is(err, ErrBadEncapsulated):
		return StatusBadRequest
	case isTimeout(err):
		return StatusRequestTimeout
	case isCommonNetError(err):
		return 0
	}
	return StatusBadRequest
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func isCommonNetError(err error) bool {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, errEOF) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
