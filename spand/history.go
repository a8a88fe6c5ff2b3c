package spand

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// MaxHistoryKeys is how many keys one GET /v1/history may ask for.
const MaxHistoryKeys = 100

// History returns the live samples of key k (those within MaxAge), oldest
// first, as a copy; nil when k is unknown. The ring of a key holds at most
// Config.MaxSamples, so a history is bounded too: it is what the
// dashboards chart.
func (a *Aggregator) History(k Key) []Sample {
	if k.Kind == KindNone || k.Kind >= numKinds {
		return nil
	}
	now := a.now().UnixNano()
	a.mu.RLock()
	var out []Sample
	if e := a.tables[k.Kind].m[k]; e != nil {
		out = make([]Sample, 0, len(e.samples))
		for _, s := range e.samples {
			if now-s.T <= int64(a.cfg.MaxAge) {
				out = append(out, s)
			}
		}
	}
	a.mu.RUnlock()
	slices.SortStableFunc(out, func(x, y Sample) int { return cmp.Compare(x.T, y.T) })
	return out
}

// HistoryReader is a Store that can list the samples of a key. The
// in-process *MemoryStore is one (through its Aggregator); a store that
// is not has no history on the dashboards and in GET /v1/history.
type HistoryReader interface {
	History(k Key) []Sample
}

var _ HistoryReader = (*MemoryStore)(nil)

// KeyOf returns the key a prediction was answered from (its Source, Key
// and Class), the key whose History charts it.
func KeyOf(p *Prediction) (Key, error) {
	kind, err := ParseKind(p.Source)
	if err != nil || kind == KindNone {
		return Key{}, fmt.Errorf("spand: prediction answered by no key (source %q)", p.Source)
	}
	var pfx netip.Prefix
	if a, err := netip.ParseAddr(p.Key); err == nil {
		pfx = hostPrefix(a)
	} else if pfx, err = netip.ParsePrefix(p.Key); err != nil {
		return Key{}, fmt.Errorf("spand: prediction key %q: %w", p.Key, err)
	}
	return Key{kind, pfx, p.Class}, nil
}

// HistoryAnswer is the body of GET /v1/history.
type HistoryAnswer struct {
	Histories []KeyHistory `json:"histories"`
}

// KeyHistory is the history of one key: Key in Key.String's form.
type KeyHistory struct {
	Key     string   `json:"key"`
	Samples []Sample `json:"samples"`
}

// errNoHistory answers GET /v1/history when the store keeps none.
var errNoHistory = errors.New("this store keeps no history")

// handleHistory serves GET /v1/history?key=KEY&key=KEY...: the live
// samples of each key (Key.String's form, e.g. "local|10.0.0.7/32|web"),
// oldest first; an unknown key has none. At most MaxHistoryKeys keys;
// 501 when the store is not a HistoryReader.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	keys := r.URL.Query()["key"]
	if len(keys) == 0 || len(keys) > MaxHistoryKeys {
		s.fail(w, r, http.StatusBadRequest, "invalid", fmt.Errorf("key: want 1..%d of them, got %d", MaxHistoryKeys, len(keys)))
		return
	}
	hr, ok := s.Store.(HistoryReader)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, "no_history", errNoHistory)
		return
	}
	out := HistoryAnswer{Histories: make([]KeyHistory, 0, len(keys))}
	for _, v := range keys {
		k, err := ParseKey(v)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, "invalid", err)
			return
		}
		h := hr.History(k)
		if h == nil {
			h = []Sample{}
		}
		out.Histories = append(out.Histories, KeyHistory{k.String(), h})
	}
	writeJSON(w, http.StatusOK, out)
}

// History asks the server for the samples of keys (at most
// MaxHistoryKeys), oldest first per key. An *APIError with status 501
// means the server's store keeps no history.
func (c *Client) History(ctx context.Context, keys []Key) (map[Key][]Sample, error) {
	if len(keys) == 0 {
		return map[Key][]Sample{}, nil
	}
	if len(keys) > MaxHistoryKeys {
		return nil, fmt.Errorf("spand: history of %d keys, at most %d", len(keys), MaxHistoryKeys)
	}
	q := url.Values{}
	for _, k := range keys {
		q.Add("key", k.String())
	}
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/history?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("spand: history: %w", err)
	}
	var a HistoryAnswer
	if err := c.do(req, &a); err != nil {
		return nil, err
	}
	out := make(map[Key][]Sample, len(a.Histories))
	for _, h := range a.Histories {
		k, err := ParseKey(h.Key)
		if err != nil {
			return nil, fmt.Errorf("spand: history answer: %w", err)
		}
		out[k] = h.Samples
	}
	return out, nil
}
