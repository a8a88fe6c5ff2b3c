package icapd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/edgeadapt/edgeadapt/filters/icapservice"
	"github.com/edgeadapt/edgeadapt/transcode"
)

// Defaults of Config.
const (
	DefaultListen = "127.0.0.1:1344"
	DefaultAdmin  = "127.0.0.1:9090"
	// DefaultProxy is the address of the HTTP forward proxy (proxy mode).
	DefaultProxy           = "127.0.0.1:3128"
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultLogFlushInterval bounds how long an access log line waits in
	// the buffer of a log file.
	DefaultLogFlushInterval = 200 * time.Millisecond
)

// Config is icapd's configuration. The zero value is valid: ICAP on
// DefaultListen, admin on DefaultAdmin, loopback clients only, the access
// log on stderr.
type Config struct {
	// Listen is the plain ICAP address; "" means DefaultListen and "off"
	// disables it (then ListenTLS must be set).
	Listen string
	// ListenTLS is the ICAPS address; "" disables it. CertFile and
	// KeyFile name the PEM certificate and key it serves.
	ListenTLS         string
	CertFile, KeyFile string
	// Admin is the address of the admin HTTP server (/metrics, /healthz,
	// /debug/pprof/); "" means DefaultAdmin and "off" disables it.
	Admin string
	// Allow lists the networks ICAP clients may connect from; nil means
	// DefaultAllow (loopback only). Others are refused and logged.
	Allow []netip.Prefix
	// AllowSet records that Allow was given explicitly (by -allow); a
	// non-loopback listener without it gets a warning.
	AllowSet bool
	// ShutdownTimeout bounds how long in-flight transactions may run after
	// SIGTERM; zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// AccessLog is where the access log goes: "" or "-" for stderr, "off"
	// for nowhere, anything else is a file appended to. Both are buffered
	// and flushed every DefaultLogFlushInterval and at shutdown.
	AccessLog string
	// LogLevel is the minimum level of the daemon's own log (not the access
	// log): debug, info, warn or error; "" means info.
	LogLevel string
	// Policy, Spand, MaxTranscodeBytes, EarlyCommitBytes and
	// EarlyHoldBytes configure the adaptation pipeline (see
	// PipelineConfig).
	Policy, Spand                                       string
	MaxTranscodeBytes, EarlyCommitBytes, EarlyHoldBytes int64
	// TranscodeTimeout bounds one transcode, the wait for a slot included
	// (PipelineConfig.TranscodeTimeout); zero means transcode.DefaultTimeout.
	TranscodeTimeout time.Duration
	// Proxy is the address of the HTTP forward proxy applying the same
	// pipeline (see StartProxy); "" means DefaultProxy and "off" disables
	// it. When the default address is busy (a Squid on the same host),
	// icapd runs without the proxy and says so; an address given
	// explicitly must bind.
	Proxy string
	// ProxySet records that -proxy was given explicitly.
	ProxySet bool
	// ProxyNoCM serves the proxy's clients without the congestion manager
	// (-proxy-cm=false), for comparison: writes go straight to the
	// sockets, and the policy learns the clients' bandwidth only from the
	// reports.
	ProxyNoCM bool
	// StoreSnapshot is the file the in-process measurement store (used
	// when Spand is "") is restored from at start and saved to every
	// DefaultSnapshotInterval and at shutdown; "" keeps it in memory only.
	StoreSnapshot string
	// GCPercent is the garbage collector's target percentage (as GOGC);
	// zero means DefaultGCPercent and a negative value turns the
	// proportional collector off (then only MemoryLimit triggers it).
	// MemoryLimit is the runtime's soft memory limit in bytes (as
	// GOMEMLIMIT); zero means DefaultMemoryLimit and a negative value
	// none. Unless given by flag (GCPercentSet, MemoryLimitSet), the GOGC
	// and GOMEMLIMIT environment variables take precedence.
	GCPercent                    int
	MemoryLimit                  int64
	GCPercentSet, MemoryLimitSet bool
}

// ParseFlags parses icapd's command line into a Config. Errors and -h
// output go to output.
func ParseFlags(args []string, output io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("icapd", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.Listen, "listen", DefaultListen, `ICAP address ("off" to disable)`)
	fs.StringVar(&c.ListenTLS, "listen-tls", "", "ICAPS (ICAP over TLS) address; needs -cert and -key")
	fs.StringVar(&c.CertFile, "cert", "", "PEM certificate for -listen-tls")
	fs.StringVar(&c.KeyFile, "key", "", "PEM private key for -listen-tls")
	fs.StringVar(&c.Admin, "admin", DefaultAdmin, `admin HTTP address for /metrics and /healthz ("off" to disable)`)
	allow := fs.String("allow", "", "comma-separated CIDRs of ICAP clients allowed to connect (default loopback only: 127.0.0.0/8,::1/128)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "how long in-flight transactions may finish after SIGTERM/SIGINT")
	fs.StringVar(&c.AccessLog, "access-log", "-", `access log: "-" for stderr, "off", or a file (buffered, flushed every 200ms and at shutdown)`)
	fs.StringVar(&c.LogLevel, "log-level", "info", "daemon log level: debug, info, warn, error")
	fs.StringVar(&c.Policy, "policy", "", "policy file, reloaded on SIGHUP and when it changes (default ./policy.toml, else the built-in copy of the repository's)")
	fs.Int64Var(&c.MaxTranscodeBytes, "max-transcode-bytes", DefaultMaxTranscodeBytes, "largest response body held to transcode; larger ones pass unchanged")
	fs.DurationVar(&c.TranscodeTimeout, "transcode-timeout", transcode.DefaultTimeout, "longest one transcode may take, the wait for a slot included; past it the original passes unchanged (reason timeout)")
	fs.Int64Var(&c.EarlyCommitBytes, "early-commit-bytes", icapservice.DefaultEarlyCommitBytes, "bodies larger than this (or of unknown length) get their ICAP and HTTP headers before they are read, so Squid keeps sending them; keep it under 64 KB behind Squid")
	fs.Int64Var(&c.EarlyHoldBytes, "early-hold-bytes", icapservice.DefaultEarlyHoldBytes, "most of an early-committed body held to transcode; larger ones are sent unchanged, as Squid 5.7 may stall while an answer has begun but sends no body")
	fs.StringVar(&c.Proxy, "proxy", DefaultProxy, `HTTP forward proxy address applying the same policy as /reqmod and /respmod; CONNECT is tunnelled untouched ("" or "off" to disable)`)
	noCM := fs.Bool("proxy-cm", true, "write to the proxy's clients through the congestion manager (one macroflow per client host), whose rate and RTT give the policy the client's bandwidth class")
	fs.StringVar(&c.Spand, "spand", "", "spand API URL for the clients' measured bandwidth and for the proxy's performance reports, e.g. http://127.0.0.1:7070 (default: the in-process store)")
	fs.StringVar(&c.StoreSnapshot, "store-snapshot", "", "file the in-process measurement store is restored from and saved to (default: memory only; unused with -spand)")
	fs.IntVar(&c.GCPercent, "gc-percent", DefaultGCPercent, "garbage collector target percentage, as GOGC (negative: off, only -memory-limit triggers a collection); GOGC in the environment wins unless this flag is given")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", DefaultMemoryLimit, "soft memory limit of the Go runtime in bytes, as GOMEMLIMIT (negative: none); GOMEMLIMIT in the environment wins unless this flag is given")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: icapd [flags]\n\nicapd is an ICAP (RFC 3507) server with the services /echo, /reqmod and /respmod.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "allow":
			c.AllowSet = true
		case "proxy":
			c.ProxySet = true
		case "gc-percent":
			c.GCPercentSet = true
		case "memory-limit":
			c.MemoryLimitSet = true
		}
	})
	c.ProxyNoCM = !*noCM
	if c.ProxySet && c.Proxy == "" {
		c.Proxy = "off"
	}
	if c.AllowSet {
		p, err := ParseAllow(*allow)
		if err != nil {
			return c, fmt.Errorf("-allow: %w", err)
		}
		c.Allow = p
	}
	return c, c.Validate()
}

// Validate reports configuration errors that would stop the daemon.
func (c Config) Validate() error {
	var errs []error
	if c.ListenTLS != "" && (c.CertFile == "" || c.KeyFile == "") {
		errs = append(errs, errors.New("-listen-tls needs -cert and -key"))
	}
	if c.ListenTLS == "" && (c.CertFile != "" || c.KeyFile != "") {
		errs = append(errs, errors.New("-cert/-key given without -listen-tls"))
	}
	if c.Listen == "off" && c.ListenTLS == "" {
		errs = append(errs, errors.New("no listener: -listen off and no -listen-tls"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("-shutdown-timeout %v is negative", c.ShutdownTimeout))
	}
	if c.TranscodeTimeout < 0 {
		errs = append(errs, fmt.Errorf("-transcode-timeout %v is negative", c.TranscodeTimeout))
	}
	if c.Spand != "" {
		if err := checkSpandURL(c.Spand); err != nil {
			errs = append(errs, err)
		}
		if c.StoreSnapshot != "" {
			errs = append(errs, errors.New("-store-snapshot is the in-process store's file: not with -spand, which keeps the measurements"))
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("-log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

func (c Config) listen() string {
	if c.Listen == "" {
		return DefaultListen
	}
	return c.Listen
}

func (c Config) admin() string {
	if c.Admin == "" {
		return DefaultAdmin
	}
	return c.Admin
}

func (c Config) proxy() string {
	if c.Proxy == "" {
		return DefaultProxy
	}
	return c.Proxy
}

func (c Config) allow() []netip.Prefix {
	if c.Allow == nil {
		return DefaultAllow
	}
	return c.Allow
}

func (c Config) shutdownTimeout() time.Duration {
	if c.ShutdownTimeout == 0 {
		return DefaultShutdownTimeout
	}
	return c.ShutdownTimeout
}
