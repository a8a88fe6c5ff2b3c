package icapd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	edgeadapt "github.com/edgeadapt/edgeadapt"
	"github.com/edgeadapt/edgeadapt/filters/icapservice"
	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
	"github.com/edgeadapt/edgeadapt/transcode"
)

// DefaultPolicyFile is the policy icapd loads when -policy is not given
// and the file exists in the working directory; otherwise it uses its
// built-in copy of the repository's policy.toml (edgeadapt.DefaultPolicy).
const DefaultPolicyFile = "policy.toml"

// DefaultMaxTranscodeBytes is the largest response body the pipeline
// holds to transcode when PipelineConfig.MaxTranscodeBytes is zero
// (transcode's own default, 32 MB); larger bodies pass unchanged. Bodies
// over PipelineConfig.EarlyCommitBytes are answered before they are read
// (icapservice's early commit), so that Squid, which sends only 64 KB of
// a body until the ICAP server answers, never stalls on them.
const DefaultMaxTranscodeBytes = transcode.DefaultMaxInputBytes

// PipelineConfig configures the adaptation pipeline. The zero value is
// valid: ./policy.toml (else the built-in default), no spand.
type PipelineConfig struct {
	// PolicyFile is the policy to load, watch and reload; "" means
	// DefaultPolicyFile if it exists, else the built-in default.
	PolicyFile string
	// Spand is the base URL of the spand API answering the clients'
	// measured bandwidth ("http://127.0.0.1:7070"); "" means none.
	Spand string
	// Predictor, if set, replaces Spand (tests, in-process spand).
	Predictor policy.Predictor
	// WatchInterval is how often Watch looks at the file; zero means
	// policy.DefaultPollInterval.
	WatchInterval time.Duration
	// MaxTranscodeBytes caps the response body held to transcode; zero
	// means DefaultMaxTranscodeBytes. Larger bodies pass unchanged.
	MaxTranscodeBytes int64
	// EarlyCommitBytes is the largest response body (by Content-Length)
	// held before the answer to a transcode starts; zero means
	// icapservice.DefaultEarlyCommitBytes (48 KiB). Larger ones keep
	// their format and are answered early: see
	// icapservice.Service.EarlyCommitBytes. Keep it under 64 KB behind
	// Squid.
	EarlyCommitBytes int64
	// EarlyHoldBytes caps the body held to transcode after an early
	// commit; zero means icapservice.DefaultEarlyHoldBytes (2 MiB). See
	// icapservice.Service.EarlyHoldBytes.
	EarlyHoldBytes int64
	// TranscodeTimeout bounds one transcode, the wait for a slot
	// included; zero means transcode.DefaultTimeout (5 s). Past it the
	// original passes unchanged (reason "timeout").
	TranscodeTimeout time.Duration
}

// Pipeline is icapd's adaptation pipeline: the policy (policy.toml) held
// in a policy.Holder, served on /reqmod and /respmod by
// filters/icapservice, with the transcoding library and the spand
// predictor wired in through internal/adapt. It reloads the policy on
// SIGHUP (Reload) and when the file changes (Watch), changing the
// services' ISTag on every successful reload.
type Pipeline struct {
	// Holder holds the policy in force.
	Holder *policy.Holder
	// Service answers /reqmod and /respmod.
	Service *icapservice.Service
	// Transcoder carries out transcode decisions.
	Transcoder *adapt.Transcoder

	cfg      PipelineConfig
	log      *slog.Logger
	spand    *adapt.Spand // nil without -spand
	builtin  string       // temporary file holding the built-in policy, if used
	mux      atomic.Pointer[icap.ServeMux]
	reloadOK atomic.Int64
	reloadKO atomic.Int64
}

// NewPipeline loads the policy and builds the services. It fails when the
// policy does not load: there is no old policy to fall back on.
func NewPipeline(cfg PipelineConfig, logger *slog.Logger) (*Pipeline, error) {
	if logger == nil {
		logger = slog.Default()
	}
	pl := &Pipeline{cfg: cfg, log: logger, Transcoder: &adapt.Transcoder{}}
	// Passes are logged by transcode at debug level (warn for errors and
	// timeouts), besides icapservice's line for each. Its input limit is
	// set to MaxTranscodeBytes below. The limits come from flags, not
	// from the policy, so a reload keeps them.
	timeout := cfg.TranscodeTimeout
	if timeout <= 0 {
		timeout = transcode.DefaultTimeout
	}
	pl.Transcoder.T = &transcode.Transcoder{Logger: logger, Limits: transcode.Limits{Timeout: timeout}}
	path := cfg.PolicyFile
	if path == "" {
		if _, err := os.Stat(DefaultPolicyFile); err == nil {
			path = DefaultPolicyFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	if path == "" {
		// policy.Holder reads a file; give it a private copy of the
		// built-in policy (reloads then re-read the same text).
		f, err := os.CreateTemp("", "icapd-policy-*.toml")
		if err != nil {
			return nil, fmt.Errorf("policy: built-in default: %w", err)
		}
		_, err = f.Write(edgeadapt.DefaultPolicy)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
			return nil, fmt.Errorf("policy: built-in default: %w", err)
		}
		path, pl.builtin = f.Name(), f.Name()
		logger.Info("no -policy and no ./policy.toml: using the built-in default policy")
	}
	h, err := policy.NewHolder(path, logger)
	if err != nil {
		pl.Close()
		return nil, err
	}
	pl.Holder = h
	h.OnReload = pl.reloaded
	pred := cfg.Predictor
	if pred == nil && cfg.Spand != "" {
		if err := checkSpandURL(cfg.Spand); err != nil {
			pl.Close()
			return nil, err
		}
		pl.spand = &adapt.Spand{Source: &spand.Client{BaseURL: cfg.Spand}, Logger: logger}
		pred = pl.spand
	}
	maxBody := cfg.MaxTranscodeBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxTranscodeBytes
	}
	pl.Transcoder.T.Limits.MaxInputBytes = maxBody
	pl.Service = &icapservice.Service{
		Policy:           h,
		Predictor:        pred,
		Transcoder:       pl.Transcoder,
		MaxBodyBytes:     maxBody,
		EarlyCommitBytes: cfg.EarlyCommitBytes,
		EarlyHoldBytes:   cfg.EarlyHoldBytes,
		Logger:           logger,
		Counters:         &icapservice.Counters{},
	}
	logger.Info("policy loaded", "file", h.Path(), "version", h.Version(), "rules", len(h.Policy().Rules()), "spand", cfg.Spand)
	return pl, nil
}

// Services returns the /reqmod and /respmod services of the policy,
// their ISTag the policy's version.
func (pl *Pipeline) Services() []Service {
	istag := icapservice.ISTag(pl.Holder.Policy())
	req := serviceOptions("reqmod", icap.MethodREQMOD)
	req.ISTag = istag
	resp := serviceOptions("respmod", icap.MethodRESPMOD)
	resp.ISTag = istag
	return []Service{
		{Path: ReqmodPath, Handler: pl.Service, Options: req},
		{Path: RespmodPath, Handler: pl.Service, Options: resp},
	}
}

// Install registers the services on d in place of the pass-through ones,
// keeps their ISTag in step with the policy, and adds the pipeline's
// metrics to d's /metrics.
func (pl *Pipeline) Install(d *Daemon) {
	for _, s := range pl.Services() {
		d.Handle(s)
	}
	pl.mux.Store(d.Mux)
	d.Metrics.AddWriter(pl.WriteMetrics)
	d.attachPipeline(pl) // the admin page (admin.go)
}

// reloaded is the Holder's OnReload hook: a new policy gets a new ISTag.
func (pl *Pipeline) reloaded(p *policy.Policy, err error) {
	if err != nil {
		pl.reloadKO.Add(1)
		return
	}
	pl.reloadOK.Add(1)
	if mux := pl.mux.Load(); mux != nil {
		tag := icapservice.ISTag(p)
		for _, path := range []string{ReqmodPath, RespmodPath} {
			if err := mux.SetISTag(path, tag); err != nil {
				pl.log.Error("policy reloaded but the ISTag could not be changed", "service", path, "err", err)
			}
		}
	}
}

// Reload re-reads the policy file now: what SIGHUP does. A bad file is
// logged and returned, and the policy in force stays.
func (pl *Pipeline) Reload() error { return pl.Holder.Reload() }

// ISTag returns the ISTag the services answer with now.
func (pl *Pipeline) ISTag() string { return icapservice.ISTag(pl.Holder.Policy()) }

// Watch reloads the policy when its file changes, until ctx is done. The
// built-in policy is not watched: nobody edits its temporary copy.
func (pl *Pipeline) Watch(ctx context.Context) {
	if pl.builtin != "" {
		return
	}
	pl.Holder.Watch(ctx, pl.cfg.WatchInterval)
}

// Close removes the temporary copy of the built-in policy, if any.
func (pl *Pipeline) Close() error {
	if pl.builtin == "" {
		return nil
	}
	return os.Remove(pl.builtin)
}

// WriteMetrics writes the pipeline's metrics in the Prometheus text
// format: decisions per rule, transcode outcomes and bytes, policy
// reloads, the policy version, and failed spand predictions.
func (pl *Pipeline) WriteMetrics(w io.Writer) error {
	if err := pl.Service.Counters.WriteMetrics(w); err != nil {
		return err
	}
	var b strings.Builder
	st := pl.Transcoder.Stats()
	promtext.Value(&b, "icapd_transcode_adapted_total", "counter", "Response bodies replaced by a transcoded one.", st.Adapted)
	promtext.Header(&b, "icapd_transcode_passed_total", "counter", "Response bodies passed unchanged by the transcoder, by reason.")
	reasons := make([]string, 0, len(st.Passed))
	for r := range st.Passed {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Fprintf(&b, "icapd_transcode_passed_total{reason=%q} %d\n", r, st.Passed[r])
	}
	promtext.Value(&b, "icapd_transcode_in_bytes_total", "counter", "Original bytes of the transcoded bodies.", st.BytesIn)
	promtext.Value(&b, "icapd_transcode_out_bytes_total", "counter", "Bytes of the transcoded bodies sent instead.", st.BytesOut)
	promtext.Header(&b, "icapd_policy_reloads_total", "counter", "Policy reloads (SIGHUP or file change) by result.")
	fmt.Fprintf(&b, "icapd_policy_reloads_total{result=\"ok\"} %d\nicapd_policy_reloads_total{result=\"error\"} %d\n", pl.reloadOK.Load(), pl.reloadKO.Load())
	promtext.Header(&b, "icapd_policy_info", "gauge", "The policy in force: its version (the ISTag) and file.")
	fmt.Fprintf(&b, "icapd_policy_info{version=%q,file=%q} 1\n", pl.Holder.Version(), pl.Holder.Path())
	if pl.spand != nil {
		promtext.Value(&b, "icapd_spand_predict_failures_total", "counter", "Bandwidth predictions from spand that failed or timed out.", pl.spand.Failures())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
