package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// run runs the tool args name through dispatch, as main does.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code, ok := dispatch(args, &out, &errb)
	if !ok {
		t.Fatalf("dispatch(%q) ran no tool", args)
	}
	return code, out.String(), errb.String()
}

// runInOrder runs the tool args name, checks its exit status, and checks
// that its output (stdout, then stderr) matches the regexps want in this
// order. It returns the exit status.
func runInOrder(t *testing.T, wantCode int, want []string, args ...string) int {
	t.Helper()
	code, stdout, stderr := run(t, args...)
	if code != wantCode {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, stdout, stderr)
	}
	out := stdout + stderr
	for _, re := range want {
		loc := regexp.MustCompile(re).FindStringIndex(out)
		if loc == nil {
			t.Fatalf("output lacks %s:\n%s", re, out)
		}
		out = out[loc[1]:]
	}
	return code
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckPolicy(t *testing.T) {
	repo := filepath.Join(testenv.ModuleRoot(t), "policy.toml")
	bad := writeFile(t, "bad.toml", `[[rules]]
name = "a"
action = "transcode"
profile = "nope"

[[rules]]
name = "b"
match.client = ["10.0.0.0/33"]
colour = "red"
action = "pass"
`)
	badType := writeFile(t, "type.toml", "[[rules]]\nname = 5\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string   // regexp
		stderr []string // regexps, all must match
	}{
		{name: "repository policy", args: []string{"-check-policy", repo}, code: 0,
			stdout: `policy\.toml: OK, 4 rules \(fast-clients-pass, .*\), version \S+`},
		{name: "equals form", args: []string{"--check-policy=" + repo}, code: 0, stdout: `OK`},
		{name: "bad file", args: []string{"-check-policy", bad}, code: 1, stderr: []string{
			regexp.QuoteMeta(bad) + `:4: rules\[0\]\.profile: .*nope`,
			regexp.QuoteMeta(bad) + `:8: rules\[1\]\.match\.client: .*10\.0\.0\.0/33`,
			regexp.QuoteMeta(bad) + `:9: rules\[1\]\.colour: unknown key`,
			`invalid policy \(3 errors\)`,
		}},
		{name: "wrong type", args: []string{"-check-policy", badType}, code: 1, stderr: []string{
			regexp.QuoteMeta(badType) + `:2: rules(\[0\])?\.name: `,
		}},
		{name: "missing file", args: []string{"-check-policy", filepath.Join(t.TempDir(), "none.toml")}, code: 1, stderr: []string{`none\.toml`}},
		{name: "no file", args: []string{"-check-policy"}, code: 2, stderr: []string{`Usage`}},
		{name: "extra argument", args: []string{"-check-policy", repo, "x"}, code: 2, stderr: []string{`Usage`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.stdout != "" && !regexp.MustCompile(tt.stdout).MatchString(stdout) {
				t.Errorf("stdout %q does not match %s", stdout, tt.stdout)
			}
			for _, re := range tt.stderr {
				if !regexp.MustCompile(re).MatchString(stderr) {
					t.Errorf("stderr does not match %s:\n%s", re, stderr)
				}
			}
		})
	}
}

// TestDispatch: the daemon's own flags are not tools.
func TestDispatch(t *testing.T) {
	for _, args := range [][]string{nil, {"-listen", "127.0.0.1:0"}, {"-policy", "x.toml"}, {"explainer"}} {
		if _, ok := dispatch(args, &bytes.Buffer{}, &bytes.Buffer{}); ok {
			t.Errorf("dispatch(%q) ran a tool", args)
		}
	}
}

// TestBinaryPolicy builds icapd and runs it with no policy flag in the
// repository (it loads ./policy.toml) and elsewhere (the built-in copy);
// then with -policy, where a real SIGHUP after an edit reloads the file
// and changes the ISTag, and a SIGHUP with a bad file keeps it.
func TestBinaryPolicy(t *testing.T) {
	testenv.LookPath(t, "go", "golang")
	bin := buildIcapd(t)
	root := testenv.ModuleRoot(t)
	addrs := []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-proxy", "off", "-access-log", "off"}

	t.Chdir(root)
	d := startIcapd(t, bin, addrs...)
	if !strings.Contains(d.log(), `msg="policy loaded" file=policy.toml`) {
		t.Errorf("no flags in the repository: ./policy.toml not loaded:\n%s", d.log())
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t)
	t.Chdir(t.TempDir())
	d = startIcapd(t, bin, addrs...)
	if !strings.Contains(d.log(), "using the built-in default policy") {
		t.Errorf("no ./policy.toml: built-in policy not used:\n%s", d.log())
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t)

	src, err := os.ReadFile(filepath.Join(root, "policy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "policy.toml", string(src))

	// -check-policy through the binary: its exit status.
	for file, want := range map[string]int{path: 0, writeFile(t, "bad.toml", "[[rules]]\nnmae = 1\n"): 1} {
		out, err := exec.Command(bin, "-check-policy", file).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Errorf("icapd -check-policy %s: exit %d, want %d\n%s", file, code, want, out)
		}
	}

	d = startIcapd(t, bin, append(addrs, "-policy", path)...)
	cl := &icap.Client{}
	defer cl.CloseIdleConnections()
	istag := func() string {
		t.Helper()
		resp, err := cl.Options(context.Background(), "icap://"+d.icap+"/respmod")
		if err != nil {
			t.Fatal(err)
		}
		return resp.ISTag()
	}
	waitTag := func(old string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if tag := istag(); tag != old {
				return tag
			}
			if time.Now().After(deadline) {
				t.Fatalf("ISTag still %s after SIGHUP:\n%s", old, d.log())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	tag0 := istag()
	if err := os.WriteFile(path, append(src, "\n# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	tag1 := waitTag(tag0)
	d.waitLog(t, "SIGHUP received", "reload not attributed to SIGHUP")
	if err := os.WriteFile(path, []byte("[[rules]]\nnmae = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "keeping the old policy", "bad policy not reported")
	if tag := istag(); tag != tag1 {
		t.Errorf("ISTag changed to %s after a bad reload", tag)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
