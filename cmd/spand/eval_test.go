package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// TestEvalCorpus replays the corpus captures. The connection counts come
// from the corpus README (tcptrace ground truth): zeek-ssh-ssh has 23 SSH
// connections, zeek-echo-connections 500 concurrent echo sessions (none can
// be predicted: each starts before any other ends).
func TestEvalCorpus(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	tests := []struct {
		file                 string
		requests             int
		minAnswered, maxAnsw int
	}{
		{"zeek-ssh-ssh.pcap", 23, 1, 22},
		{"zeek-echo-connections.pcap.gz", 500, 0, 0},
		{"zeek-http-206_example_b.pcap", 2, 1, 1}, // the second download, 25 min later, same /24
		{"zeek-http-bro.org.pcap", 8, 1, 7},       // 13 connections, 8 carried data
	}
	for _, tt := range tests {
		var a aggFlags
		res, _, err := evalFile(context.Background(), filepath.Join(dir, tt.file), "", &a)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if res.Requests != tt.requests || res.Answered < tt.minAnswered || res.Answered > tt.maxAnsw {
			t.Errorf("%s: %d requests, %d answered; want %d and %d..%d", tt.file, res.Requests, res.Answered, tt.requests, tt.minAnswered, tt.maxAnsw)
		}
		if res.Within2x > res.Answered {
			t.Errorf("%s: %d within 2x of %d answered", tt.file, res.Within2x, res.Answered)
		}
		// With a maximum age of 1 ns nothing learned can answer.
		a.maxAge = time.Nanosecond
		if res, _, _ := evalFile(context.Background(), filepath.Join(dir, tt.file), "", &a); res.Answered != 0 {
			t.Errorf("%s: %d answered with nothing fresh to learn from", tt.file, res.Answered)
		}
	}
}

func TestEvalCommand(t *testing.T) {
	dir := testenv.Corpus(t, "pcap")
	f := filepath.Join(dir, "zeek-ssh-ssh.pcap")
	var out, errb bytes.Buffer
	if err := runEval(context.Background(), []string{"-r", f}, &out, &errb); err != nil {
		t.Fatalf("eval: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "zeek-ssh-ssh.pcap") || !strings.Contains(out.String(), "within2x%") {
		t.Fatalf("table:\n%s", out.String())
	}
	out.Reset()
	if err := runEval(context.Background(), []string{f, filepath.Join(dir, "zeek-http-bro.org.pcap")}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "all 2 captures: 31 requests") {
		t.Fatalf("two captures (23 + 8 requests):\n%s", out.String())
	}
	out.Reset()
	if err := runEval(context.Background(), []string{"-json", "-f", "tcp port 22", f}, &out, &errb); err != nil {
		t.Fatalf("eval -json: %v", err)
	}
	// The filter keeps the SSH connections: a subset of the 23.
	var got evalOut
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Requests < 1 || got.Requests > 23 || got.AnsweredFraction <= 0 {
		t.Fatalf("eval -json: %+v %v\n%s", got, err, out.String())
	}
	if err := runEval(context.Background(), nil, &out, &errb); err == nil {
		t.Fatal("eval without a file succeeded")
	}
	if err := runEval(context.Background(), []string{filepath.Join(dir, "missing.pcap")}, &out, &errb); err == nil {
		t.Fatal("eval of a missing file succeeded")
	}
}
