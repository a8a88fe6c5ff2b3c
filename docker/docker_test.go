// Package docker checks the files of docker/ without a Docker engine: Squid
// parses squid.conf, docker-compose validates compose.yaml, and the commands
// and flags the Dockerfiles and the compose file use are the ones the real
// binaries build and accept.
package docker

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgeadapt/edgeadapt/internal/testenv"
)

// read returns the content of docker/<name>.
func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "docker", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// entrypoint returns the exec-form ENTRYPOINT of docker/<dockerfile>.
func entrypoint(t *testing.T, dockerfile string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindStringSubmatch(read(t, dockerfile))
	if m == nil {
		t.Fatalf("%s: no exec-form ENTRYPOINT", dockerfile)
	}
	var args []string
	if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
		t.Fatalf("%s: ENTRYPOINT %s: %v", dockerfile, m[1], err)
	}
	return args
}

// spandCommand returns the command of the spand service in compose.yaml
// (a flow sequence, that is a JSON array), with ${SPAND_IFACE:-eth0}
// replaced by iface.
func spandCommand(t *testing.T, iface string) []string {
	t.Helper()
	compose := read(t, "compose.yaml")
	_, spand, ok := strings.Cut(compose, "\n  spand:\n")
	if !ok {
		t.Fatal("compose.yaml: no spand service")
	}
	m := regexp.MustCompile(`(?m)^    command: (\[.*\])$`).FindStringSubmatch(spand)
	if m == nil {
		t.Fatal("compose.yaml: spand has no command: [...]")
	}
	var args []string
	if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
		t.Fatalf("compose.yaml: spand command %s: %v", m[1], err)
	}
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "${SPAND_IFACE:-eth0}", iface)
	}
	return args
}

// TestSquidConfParses runs "squid -k parse" on a copy of squid.conf, which
// fails on unknown directives and bad values, and checks what parsing does
// not: the ICAP services are the compose service icapd on the port its
// ENTRYPOINT listens on, at /reqmod and /respmod, and fail open.
func TestSquidConfParses(t *testing.T) {
	squid := testenv.LookPath(t, "squid", "squid")
	conf := read(t, "squid.conf")
	// A copy, so that nothing squid might write lands in the repository.
	tmp := filepath.Join(t.TempDir(), "squid.conf")
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(squid, "-k", "parse", "-f", tmp).CombinedOutput()
	if err != nil {
		t.Fatalf("squid -k parse: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "ERROR") || strings.Contains(line, "WARNING") || strings.Contains(line, "unrecognized") {
			t.Errorf("squid -k parse: %s", line)
		}
	}

	// Squid resolves icap_service hosts only when it runs, so check the
	// names against the compose file and icapd's listen address here.
	var listen string
	ep := entrypoint(t, "Dockerfile.icapd")
	if i := slices.Index(ep, "-listen"); i >= 0 && i+1 < len(ep) {
		listen = ep[i+1]
	}
	_, port, ok := strings.Cut(listen, ":")
	if !ok {
		t.Fatalf("Dockerfile.icapd ENTRYPOINT: -listen %q has no port", listen)
	}
	compose := read(t, "compose.yaml")
	services := map[string]string{} // method -> path
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "icap_service" {
			continue
		}
		u, err := url.Parse(f[3])
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if u.Scheme != "icap" || u.Port() != port || !strings.Contains(compose, "\n  "+u.Hostname()+":\n") {
			t.Errorf("%s: want icap://<compose service>:%s/...", line, port)
		}
		if !slices.Contains(f[4:], "bypass=on") {
			t.Errorf("%s: want bypass=on (fail open)", line)
		}
		if !strings.Contains(conf, "\nadaptation_access "+f[1]+" allow all\n") {
			t.Errorf("%s: no adaptation_access %s allow all", line, f[1])
		}
		services[f[2]] = u.Path
	}
	want := map[string]string{"reqmod_precache": "/reqmod", "respmod_precache": "/respmod"}
	for method, path := range want {
		if services[method] != path {
			t.Errorf("icap_service %s: path %q, want %q", method, services[method], path)
		}
	}
}

// TestComposeConfig validates compose.yaml with Debian's docker-compose
// (no engine needed) and checks the four services and spand's capture
// settings in the resolved configuration.
func TestComposeConfig(t *testing.T) {
	dc := testenv.LookPath(t, "docker-compose", "docker-compose")
	file := filepath.Join(testenv.ModuleRoot(t), "docker", "compose.yaml")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(dc, append([]string{"-f", file}, args...)...)
		cmd.Env = append(os.Environ(), "SPAND_IFACE=ens9")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	got := strings.Fields(run("config", "--services"))
	slices.Sort(got)
	if want := []string{"icapd", "redis", "spand", "squid"}; !slices.Equal(got, want) {
		t.Errorf("services %q, want %q", got, want)
	}
	cfg := run("config")
	for _, s := range []string{
		"network_mode: host",
		"- NET_RAW",
		"- ens9",                    // SPAND_IFACE is substituted
		"- 127.0.0.1:6379:6379/tcp", // Redis only on loopback
		"- spand:172.28.0.1",        // icapd finds spand on the gateway
		"subnet: 172.28.0.0/24",     // icapd's -allow
		"dockerfile: docker/Dockerfile.icapd",
		"dockerfile: docker/Dockerfile.spand",
		"dockerfile: docker/Dockerfile.squid",
	} {
		if !strings.Contains(cfg, s) {
			t.Errorf("docker-compose config lacks %q:\n%s", s, cfg)
		}
	}
}

// TestImageCommands builds each command the Dockerfiles build, with the same
// tags, and runs it with the flags of its ENTRYPOINT or compose command plus
// -h: an unknown flag or a bad value exits 2, all known exits 0.
func TestImageCommands(t *testing.T) {
	goTool := testenv.LookPath(t, "go", "golang")
	root := testenv.ModuleRoot(t)
	build := regexp.MustCompile(`(CGO_ENABLED=0 )?go build (?:-tags (\S+) )?-trimpath -o (\S+) (\./cmd/\w+)`)
	tests := []struct {
		dockerfile string
		args       func(t *testing.T) []string // flags, without the program
	}{
		{"Dockerfile.icapd", func(t *testing.T) []string { return entrypoint(t, "Dockerfile.icapd")[1:] }},
		{"Dockerfile.spand", func(t *testing.T) []string { return spandCommand(t, "lo") }},
	}
	for _, tt := range tests {
		t.Run(tt.dockerfile, func(t *testing.T) {
			m := build.FindStringSubmatch(read(t, tt.dockerfile))
			if m == nil {
				t.Fatalf("%s: no %q line", tt.dockerfile, build)
			}
			cgoOff, tags, pkg := m[1] != "", m[2], m[4]
			if tags != "" {
				// Like CI's -tags vips: the C library must be installed.
				testenv.LookPath(t, "vips", "libvips-tools")
			}
			bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
			args := []string{"build", "-trimpath", "-o", bin}
			if tags != "" {
				args = append(args, "-tags", tags)
			}
			cmd := exec.Command(goTool, append(args, pkg)...)
			cmd.Dir = root
			if cgoOff {
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", pkg, err, out)
			}
			flags := append(tt.args(t), "-h")
			out, err := exec.Command(bin, flags...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", pkg, strings.Join(flags, " "), err, out)
			}
			if len(out) == 0 {
				t.Errorf("%s -h printed no usage", pkg)
			}
		})
	}
}
