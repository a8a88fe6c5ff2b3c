package track

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// Output formats of Writer.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// Fields are the names of the fields of one connection in the JSON and
// CSV output, in order.
var Fields = []string{
	"a", "b", "class", "first", "last", "elapsed_s",
	"pkts_a2b", "pkts_b2a", "data_bytes_a2b", "data_bytes_b2a",
	"unique_bytes_a2b", "unique_bytes_b2a", "rexmt_pkts_a2b", "rexmt_pkts_b2a",
	"throughput_a2b", "throughput_b2a",
	"rtt_handshake_ms", "rtt_min_ms", "rtt_median_ms", "rtt_ts_median_ms", "complete",
}

// jsonKeys are the quoted Fields with their colons, made once.
var jsonKeys = func() [][]byte {
	k := make([][]byte, len(Fields))
	for i, f := range Fields {
		k[i] = append(strconv.AppendQuote(nil, f), ':')
	}
	return k
}()

// Writer writes connection records as a table, JSON lines (one object per
// connection) or CSV with a header line.
type Writer struct {
	format string
	bw     *bufio.Writer
	tw     *tabwriter.Writer
	out    io.Writer
	buf    []byte
	n      int
}

// NewWriter returns a Writer of format (table, json or csv) to w.
func NewWriter(w io.Writer, format string) (*Writer, error) {
	wr := &Writer{format: format, out: w}
	switch format {
	case FormatJSON, FormatCSV:
		wr.bw = bufio.NewWriterSize(w, 1<<16)
	case FormatTable:
		// tabwriter writes every cell and every run of padding
		// separately: without a buffer that is two system calls per cell.
		wr.bw = bufio.NewWriterSize(w, 1<<16)
		wr.tw = tabwriter.NewWriter(wr.bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	default:
		return nil, fmt.Errorf("track: output format %q: want table, json or csv", format)
	}
	return wr, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Write writes one record.
func (w *Writer) Write(c *Conn) error {
	b := w.buf[:0]
	switch w.format {
	case FormatJSON:
		b = append(b, '{')
		for i := range Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, jsonKeys[i]...)
			b = appendField(b, c, i, true)
		}
		b = append(b, '}', '\n')
		_, err := w.bw.Write(b)
		w.buf = b
		return err
	case FormatCSV:
		if w.n == 0 {
			for i, f := range Fields {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, f...)
			}
			b = append(b, '\n')
		}
		for i := range Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendField(b, c, i, false)
		}
		b = append(b, '\n')
		w.n++
		_, err := w.bw.Write(b)
		w.buf = b
		return err
	}
	if w.n == 0 {
		fmt.Fprintln(w.tw, "a\tb\tclass\tstart\telapsed_s\tpkts a>b\tpkts b>a\tbytes a>b\tbytes b>a\trexmt a>b\trexmt b>a\tthru a>b B/s\tthru b>a B/s\thandshake ms\trtt min ms\trtt med ms\tts rtt ms\tcomplete\t")
	}
	w.n++
	_, err := fmt.Fprintf(w.tw, "%s\t%s\t%s\t%s\t%.3f\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%v\t\n",
		c.A, c.B, c.Class, c.First.Format("2006-01-02T15:04:05.000000"), c.Elapsed().Seconds(),
		c.AB.Packets, c.BA.Packets, c.AB.DataBytes, c.BA.DataBytes, c.AB.RexmtPackets, c.BA.RexmtPackets,
		c.AB.Throughput, c.BA.Throughput, ms(c.HandshakeRTT), ms(c.RTTMin), ms(c.RTTMedian), ms(c.TSRTTMedian), c.Complete)
	return err
}

func appendField(b []byte, c *Conn, i int, quote bool) []byte {
	str := func(s string) []byte {
		if quote {
			return strconv.AppendQuote(b, s)
		}
		return append(b, s...)
	}
	// Addresses and times need no escaping: appended in place, quoted
	// by hand, they cost no allocation.
	q := func(b []byte) []byte {
		if quote {
			b = append(b, '"')
		}
		return b
	}
	fl := func(v float64) []byte { return strconv.AppendFloat(b, v, 'f', -1, 64) }
	u := func(v uint64) []byte { return strconv.AppendUint(b, v, 10) }
	switch i {
	case 0:
		return q(c.A.AppendTo(q(b)))
	case 1:
		return q(c.B.AppendTo(q(b)))
	case 2:
		return str(string(c.Class))
	case 3:
		return q(c.First.AppendFormat(q(b), time.RFC3339Nano))
	case 4:
		return q(c.Last.AppendFormat(q(b), time.RFC3339Nano))
	case 5:
		return fl(c.Elapsed().Seconds())
	case 6:
		return u(c.AB.Packets)
	case 7:
		return u(c.BA.Packets)
	case 8:
		return u(c.AB.DataBytes)
	case 9:
		return u(c.BA.DataBytes)
	case 10:
		return u(c.AB.UniqueBytes)
	case 11:
		return u(c.BA.UniqueBytes)
	case 12:
		return u(c.AB.RexmtPackets)
	case 13:
		return u(c.BA.RexmtPackets)
	case 14:
		return strconv.AppendFloat(b, c.AB.Throughput, 'f', 3, 64)
	case 15:
		return strconv.AppendFloat(b, c.BA.Throughput, 'f', 3, 64)
	case 16:
		return fl(ms(c.HandshakeRTT))
	case 17:
		return fl(ms(c.RTTMin))
	case 18:
		return fl(ms(c.RTTMedian))
	case 19:
		return fl(ms(c.TSRTTMedian))
	case 20:
		return strconv.AppendBool(b, c.Complete)
	}
	return b
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	if w.tw != nil {
		if err := w.tw.Flush(); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}
