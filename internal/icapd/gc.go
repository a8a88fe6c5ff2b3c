package icapd

import (
	"runtime/debug"
	"strconv"
)

// Defaults of the garbage collector settings (Config.GCPercent and
// Config.MemoryLimit).
//
// icapd's live heap is small (tens of MB: per-connection buffers, pools,
// the policy) while it allocates a few KB per transaction, so with Go's
// default GOGC=100 it collects several times a second under load; each
// cycle takes a quarter of the CPU for 10-20 ms on a 2-core machine and
// stretches the tail latency of the transactions it overlaps. At 400 the
// heap may grow to five times the live data before a collection, which
// cuts the number of cycles by about four (bench/icap-vs-cicap.sh, the
// c=256 rows: see README). The soft memory limit bounds what that costs
// when the live heap is large (bodies held to transcode, up to
// -max-transcode-bytes each): near the limit the runtime collects more
// often instead of growing the heap.
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 1 << 30
)

// gcSettings returns the GC percent and soft memory limit to set, and
// whether to set each: an explicit flag wins, then the GOGC and GOMEMLIMIT
// environment variables (which the runtime has already applied), then the
// defaults.
func (c Config) gcSettings(getenv func(string) string) (percent int, setPercent bool, limit int64, setLimit bool) {
	percent, setPercent = gcSetting(c.GCPercentSet, getenv("GOGC"), c.GCPercent, DefaultGCPercent, -1)
	limit, setLimit = gcSetting(c.MemoryLimitSet, getenv("GOMEMLIMIT"), c.MemoryLimit, DefaultMemoryLimit, 1<<63-1)
	return percent, setPercent, limit, setLimit
}

// gcSetting resolves one setting: none to make when only the environment
// gives it (env, not by flag), else v, with zero meaning def and a
// negative value off (the runtime's value for off).
func gcSetting[T int | int64](flagSet bool, env string, v, def, off T) (T, bool) {
	switch {
	case !flagSet && env != "":
		return 0, false
	case v == 0:
		return def, true
	case v < 0:
		return off, true
	}
	return v, true
}

// applyGC sets the collector's settings for the daemon and returns them
// for the log, as GOGC and GOMEMLIMIT would spell them.
func (c Config) applyGC(getenv func(string) string) (gogc, gomemlimit string) {
	percent, setPercent, limit, setLimit := c.gcSettings(getenv)
	if setPercent {
		debug.SetGCPercent(percent)
	}
	if setLimit {
		debug.SetMemoryLimit(limit)
	}
	// Read back what is in force, whichever way it was set.
	percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	limit = debug.SetMemoryLimit(-1)
	gogc = strconv.Itoa(percent)
	if percent < 0 {
		gogc = "off"
	}
	gomemlimit = strconv.FormatInt(limit, 10)
	if limit == 1<<63-1 {
		gomemlimit = "off"
	}
	return gogc, gomemlimit
}
