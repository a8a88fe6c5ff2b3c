package spand

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestPredictionJSON: the hand-written encoder of /v1/predict answers
// writes exactly what encoding/json's Encoder writes.
func TestPredictionJSON(t *testing.T) {
	cases := []Prediction{
		{},
		{Class: ClassWeb, Source: "none", Addr: netip.MustParseAddr("192.0.2.1")},
		{Addr: netip.MustParseAddr("2001:db8::1"), Class: ClassBulk, Source: "prefix", Key: "2001:db8::/64",
			Throughput: 1.5e6, ThroughputP25: 1e-7, ThroughputP75: 1e21, RTT: 35.25, RTTMin: 0.000001,
			Loss: 0.0123, ResponseTime: 80, ResponseRate: 2.5e5, Reports: 32, Weight: 31.999999, Age: 1e-9},
		{Class: "we\"b<&>", Source: "host\n", Key: "ü", Throughput: -3}, // through encoding/json
		{Class: ClassInteractive, Source: "local", Key: "10.0.0.5", Throughput: 123456789.123456, Loss: 1, Reports: -1, Age: 5e-324},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		f := func() float64 {
			switch r.IntN(4) {
			case 0:
				return 0
			case 1:
				return r.Float64() * math.Pow(10, float64(r.IntN(50)-25))
			case 2:
				return float64(r.IntN(1 << 30))
			}
			return -r.ExpFloat64()
		}
		cases = append(cases, Prediction{Addr: netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), 0, 1}), Class: ClassRealtime,
			Source: "host", Key: "10.0.0.1", Throughput: f(), ThroughputP25: f(), ThroughputP75: f(), RTT: f(), RTTMin: f(),
			Loss: f(), ResponseTime: f(), ResponseRate: f(), Reports: r.IntN(1000), Weight: f(), Age: f()})
	}
	for _, p := range cases {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(&p); err != nil {
			t.Fatal(err)
		}
		if got := appendPredictionJSON(nil, &p); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%+v:\ngot  %s\nwant %s", p, got, want.Bytes())
		}
	}
}

// TestPredictValues: the hand-split query of /v1/predict gives what
// url.Values.Get gives.
func TestPredictValues(t *testing.T) {
	for _, raw := range []string{
		"", "addr=10.0.0.1", "addr=10.0.0.1&class=bulk", "class=web&addr=2001:db8::1",
		"addr=1.2.3.4&addr=5.6.7.8&class=web&class=bulk", "addr", "addr=&class=", "=x&addr=1.1.1.1",
		"addr=10.0.0.1%2b&class=w%65b", "addr=1.1.1.1;class=web", "class=real+time&addr=1.1.1.1",
		"x=1&&addr=9.9.9.9&", "addr=fe80::1%25eth0", "addr=%zz&class=web",
	} {
		r := httptest.NewRequest("GET", "/v1/predict?"+raw, nil)
		a, c := predictValues(r)
		q := r.URL.Query()
		if a != q.Get("addr") || c != q.Get("class") {
			t.Errorf("%q: got addr %q class %q, url.Values %q %q", raw, a, c, q.Get("addr"), q.Get("class"))
		}
	}
}

// FuzzPredictValues: on any query string the hand split agrees with
// url.Values.Get, and parsing what it returns never panics.
func FuzzPredictValues(f *testing.F) {
	for _, s := range []string{"addr=10.0.0.1&class=web", "class=bulk&addr=::1&addr=1.1.1.1", "addr=%31.1.1.1", "a;b=c", "&&=&addr"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/v1/predict", nil)
		r.URL.RawQuery = raw
		a, c := predictValues(r)
		q := r.URL.Query()
		if a != q.Get("addr") || c != q.Get("class") {
			t.Fatalf("%q: got addr %q class %q, url.Values %q %q", raw, a, c, q.Get("addr"), q.Get("class"))
		}
		parsePredict(a, c)
	})
}
