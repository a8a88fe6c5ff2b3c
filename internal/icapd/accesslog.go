package icapd

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgeadapt/edgeadapt/icap"
)

// accessLog writes one line per transaction in the format of
// slog.TextHandler ("time=... level=INFO msg=icap method=... ..."), but
// appends the line by hand into a reused buffer: slog's attribute and
// record handling cost about 2 µs per transaction, a tenth of an OPTIONS.
// TestAccessLineMatchesSlog keeps the two formats identical.
type accessLog struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (l *accessLog) log(now time.Time, ti *icap.TransactionInfo) {
	l.mu.Lock()
	l.buf = appendAccessLine(l.buf[:0], now, ti)
	l.w.Write(l.buf)
	l.mu.Unlock()
}

// appendAccessLine appends ti's access log line, as slog.TextHandler would
// print a record at time now with the attributes of Daemon.observe.
func appendAccessLine(b []byte, now time.Time, ti *icap.TransactionInfo) []byte {
	b = append(b, "time="...)
	b = now.Round(0).AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, " level=INFO msg=icap method="...)
	b = appendLogString(b, ti.Method)
	b = append(b, " service="...)
	b = appendLogString(b, ti.Service)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(ti.Status), 10)
	b = append(b, " bytes_in="...)
	b = strconv.AppendInt(b, ti.BytesIn, 10)
	b = append(b, " bytes_out="...)
	b = strconv.AppendInt(b, ti.BytesOut, 10)
	b = append(b, " duration="...)
	b = append(b, ti.Duration.String()...)
	b = append(b, " client_ip="...)
	b = appendLogString(b, ti.ClientIP)
	b = append(b, " remote="...)
	b = appendLogString(b, ti.RemoteAddr)
	if ti.Err != nil {
		b = append(b, " err="...)
		b = appendLogString(b, ti.Err.Error())
	}
	return append(b, '\n')
}

// appendLogString appends s quoted when slog.TextHandler would quote it.
func appendLogString(b []byte, s string) []byte {
	if logNeedsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// logNeedsQuoting mirrors log/slog's needsQuoting.
func logNeedsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c <= ' ' || c == '=' || c == '"') {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
