package icap

import "strconv"

// ICAP status codes (RFC 3507 section 4.3.3), plus 206 from the ICAP
// Partial Content extension.
const (
	StatusContinue              = 100
	StatusOK                    = 200
	StatusNoContent             = 204
	StatusPartialContent        = 206
	StatusBadRequest            = 400
	StatusNotFound              = 404
	StatusMethodNotAllowed      = 405
	StatusRequestTimeout        = 408
	StatusInternalServerError   = 500
	StatusNotImplemented        = 501
	StatusBadGateway            = 502
	StatusServiceUnavailable    = 503
	StatusVersionNotSupported   = 505
	StatusRequestEntityTooLarge = 413
)

var statusText = map[int]string{
	StatusContinue:              "Continue",
	StatusOK:                    "OK",
	StatusNoContent:             "No Content",
	StatusPartialContent:        "Partial Content",
	StatusBadRequest:            "Bad Request",
	StatusNotFound:              "ICAP Service Not Found",
	StatusMethodNotAllowed:      "Method Not Allowed For Service",
	StatusRequestTimeout:        "Request Timeout",
	StatusRequestEntityTooLarge: "Request Entity Too Large",
	StatusInternalServerError:   "Server Error",
	StatusNotImplemented:        "Method Not Implemented",
	StatusBadGateway:            "Bad Gateway",
	StatusServiceUnavailable:    "Service Overloaded",
	StatusVersionNotSupported:   "ICAP Version Not Supported",
}

// StatusText returns the RFC 3507 reason phrase for code, or "" if unknown.
func StatusText(code int) string { return statusText[code] }

// statusLines caches "ICAP/1.0 <code> <text>\r\n" for known codes.
var statusLines = func() map[int]string {
	m := make(map[int]string, len(statusText))
	for c, t := range statusText {
		m[c] = "ICAP/1.0 " + strconv.Itoa(c) + " " + t + "\r\n"
	}
	return m
}()

func statusLine(code int) string {
	if s, ok := statusLines[code]; ok {
		return s
	}
	return "ICAP/1.0 " + strconv.Itoa(code) + " Status " + strconv.Itoa(code) + "\r\n"
}
