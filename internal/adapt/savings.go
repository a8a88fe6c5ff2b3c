package adapt

import (
	"slices"
	"strings"
	"sync"
)

// MaxSavingsTypes bounds the media types the savings counters keep apart;
// bodies of further types count under "other". The type comes from the
// origin's Content-Type, so without a bound a server could grow the
// counters (and icapd's /metrics) without limit. Only types the
// transcoder can shrink (images, text) are ever counted, so the bound is
// rarely reached.
const MaxSavingsTypes = 32

// TypeSavings is what adaptation did to the bodies of one media type.
type TypeSavings struct {
	MediaType string // "image/jpeg"; "other" beyond MaxSavingsTypes
	Bodies    int64  // bodies replaced by a transcoded one
	BytesIn   int64  // their original bytes
	BytesOut  int64  // the transcoded bytes sent instead
}

// savings counts adapted bodies per media type. Safe for concurrent use;
// the zero value is ready.
type savings struct {
	mu sync.Mutex
	m  map[string]*TypeSavings
}

func (s *savings) add(mediaType string, in, out int) {
	mt := strings.ToLower(mediaType)
	if mt == "" {
		mt = "unknown"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*TypeSavings{}
	}
	t := s.m[mt]
	if t == nil {
		if len(s.m) >= MaxSavingsTypes {
			mt = "other"
			t = s.m[mt]
		}
		if t == nil {
			t = &TypeSavings{MediaType: mt}
			s.m[mt] = t
		}
	}
	t.Bodies++
	t.BytesIn += int64(in)
	t.BytesOut += int64(out)
}

func (s *savings) snapshot() []TypeSavings {
	s.mu.Lock()
	out := make([]TypeSavings, 0, len(s.m))
	for _, t := range s.m {
		out = append(out, *t)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b TypeSavings) int { return strings.Compare(a.MediaType, b.MediaType) })
	return out
}

// Savings returns, per media type of the original, the bodies this
// Transcoder replaced and their bytes before and after, sorted by media
// type: what adaptation saved. Bodies passed unchanged are not counted.
func (t *Transcoder) Savings() []TypeSavings { return t.saved.snapshot() }
