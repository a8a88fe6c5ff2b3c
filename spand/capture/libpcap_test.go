//go:build libpcap

package capture

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
	"github.com/edgeadapt/edgeadapt/spand/track"
)

func trackSource(t *testing.T, src Source, f *Filter) ([]track.Conn, RunStats) {
	t.Helper()
	var conns []track.Conn
	tr := track.New(track.Config{Periodic: -1, OnConn: func(c *track.Conn) { conns = append(conns, *c) }})
	st, err := Run(context.Background(), src, f, tr)
	if err != nil {
		t.Fatal(err)
	}
	tr.Flush()
	return conns, st
}

// TestLibpcapMatchesPcapgo reads every uncompressed corpus capture with
// libpcap and with the pure-Go reader: the connection records must be
// identical, and libpcap's filter must keep the packets the built-in one
// keeps.
func TestLibpcapMatchesPcapgo(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	for _, name := range corpusFiles {
		if strings.HasSuffix(name, ".gz") {
			continue // libpcap does not read gzip
		}
		path := filepath.Join(dir, name)
		lp, err := OpenPcapFile(path, "")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := trackSource(t, lp, nil)
		lp.Close()
		gf, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := trackSource(t, gf, nil)
		gf.Close()
		if len(got) != len(want) {
			t.Fatalf("%s: libpcap %d records, pcapgo %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s record %d:\nlibpcap %+v\npcapgo  %+v", name, i, got[i], want[i])
			}
		}

		const expr = "tcp and not port 22"
		lpf, err := OpenPcapFile(path, expr)
		if err != nil {
			t.Fatal(err)
		}
		_, lst := trackSource(t, lpf, nil)
		lpf.Close()
		gf, _ = OpenFile(path)
		bf, err := CompileBuiltin(expr, gf.LinkType())
		if err != nil {
			t.Fatal(err)
		}
		_, gst := trackSource(t, gf, bf)
		gf.Close()
		if lst.Read != gst.Read-gst.Filtered {
			t.Errorf("%s %q: libpcap kept %d packets, built-in filter %d", name, expr, lst.Read, gst.Read-gst.Filtered)
		}
	}
}
