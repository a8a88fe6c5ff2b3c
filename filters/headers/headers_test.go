package headers

import (
	"net/http"
	"slices"
	"testing"
)

func TestRules(t *testing.T) {
	tests := []struct {
		name    string
		rules   Rules
		in      http.Header
		want    http.Header
		changed bool
	}{
		{"empty changes nothing", Rules{}, http.Header{"A": {"1"}}, http.Header{"A": {"1"}}, false},
		{"add appends", Rules{Add: map[string]string{"via": "edge"}}, http.Header{"Via": {"squid"}}, http.Header{"Via": {"squid", "edge"}}, true},
		{"set replaces all", Rules{Set: map[string]string{"X-A": "2"}}, http.Header{"X-A": {"1", "3"}}, http.Header{"X-A": {"2"}}, true},
		{"set same value is no change", Rules{Set: map[string]string{"X-A": "1"}}, http.Header{"X-A": {"1"}}, http.Header{"X-A": {"1"}}, false},
		{"remove", Rules{Remove: []string{"cookie"}}, http.Header{"Cookie": {"a=b"}, "X": {"y"}}, http.Header{"X": {"y"}}, true},
		{"remove absent", Rules{Remove: []string{"Cookie"}}, http.Header{"X": {"y"}}, http.Header{"X": {"y"}}, false},
		{"remove then set then add", Rules{Remove: []string{"Via"}, Set: map[string]string{"Via": "a"}, Add: map[string]string{"Via": "b"}},
			http.Header{"Via": {"x", "y"}}, http.Header{"Via": {"a", "b"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rules
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			h := tt.in.Clone()
			if got := r.Apply(h); got != tt.changed {
				t.Errorf("changed = %v", got)
			}
			if len(h) != len(tt.want) {
				t.Fatalf("got %v, want %v", h, tt.want)
			}
			for k, v := range tt.want {
				if !slices.Equal(h[k], v) {
					t.Errorf("%s = %q, want %q", k, h[k], v)
				}
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	bad := []Rules{
		{Add: map[string]string{"X Y": "1"}},
		{Set: map[string]string{"": "1"}},
		{Remove: []string{"a:b"}},
		{Set: map[string]string{"X": "a\r\nInjected: 1"}},
		{Add: map[string]string{"X": "nul\x00"}},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
	var nilRules *Rules
	if !nilRules.Empty() || nilRules.Apply(http.Header{}) || nilRules.Names() != nil {
		t.Error("nil Rules is not a no-op")
	}
	r := Rules{Remove: []string{"a"}, Set: map[string]string{"b": "1"}, Add: map[string]string{"c": "2"}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Errorf("Names = %q", got)
	}
}
