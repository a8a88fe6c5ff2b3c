package rewrite

import (
	"net/http"
	"testing"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		u       URL
		in      string
		want    string
		host    string
		changed bool
	}{
		{"host", URL{Host: "mirror.lan:8080"}, "http://cdn.example/a/b?x=1", "http://mirror.lan:8080/a/b?x=1", "mirror.lan:8080", true},
		{"scheme", URL{Scheme: "http"}, "https://e.example/", "http://e.example/", "e.example", true},
		{"prefix", URL{FromPrefix: "/assets/", ToPrefix: "/static/v2/"}, "http://e.example/assets/app.js", "http://e.example/static/v2/app.js", "e.example", true},
		{"prefix no match", URL{FromPrefix: "/assets/", ToPrefix: "/s/"}, "http://e.example/img/a.png", "http://e.example/img/a.png", "e.example", false},
		{"strip query", URL{StripQuery: true}, "http://e.example/p?utm_source=x", "http://e.example/p", "e.example", true},
		{"all", URL{Scheme: "http", Host: "m.lan", FromPrefix: "/", ToPrefix: "/mirror/", StripQuery: true}, "https://e.example/a?q", "http://m.lan/mirror/a", "m.lan", true},
		{"zero", URL{}, "http://e.example/a", "http://e.example/a", "e.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.u.Validate(); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", tt.in, nil)
			if got := tt.u.Apply(req); got != tt.changed {
				t.Errorf("changed = %v", got)
			}
			if req.URL.String() != tt.want || req.Host != tt.host {
				t.Errorf("got %s (Host %s), want %s (Host %s)", req.URL, req.Host, tt.want, tt.host)
			}
		})
	}
	var nilURL *URL
	if !nilURL.Empty() || nilURL.Apply(&http.Request{}) {
		t.Error("nil URL is not a no-op")
	}
}

func TestValidate(t *testing.T) {
	for _, u := range []URL{
		{Scheme: "ftp"},
		{Host: "Mirror.lan"},
		{Host: "a/b"},
		{Host: "m.lan:http"},
		{Host: ":80"},
		{FromPrefix: "/a/"},
		{FromPrefix: "a/", ToPrefix: "/b/"},
		{FromPrefix: "/a/", ToPrefix: "/b?x"},
	} {
		if err := u.Validate(); err == nil {
			t.Errorf("%+v: no error", u)
		}
	}
}
