// Package systest holds system tests of the built binaries (cmd/icapd,
// cmd/spand) with the real programs around them, all on loopback: Squid
// 5 (internal/squidtest), wrk and redis-server.
//
//   - TestLoad: wrk drives 100 connections through Squid into icapd on a
//     mix of pass-through and adapted objects; no failed request,
//     pass-through bodies byte-identical, icapd's RSS flat.
//   - TestICAPDFailover: icapd is killed (SIGKILL) under load with
//     bypass=on, Squid serves unadapted content, and adapts again once
//     icapd is back (within icap_service_revival_delay); then SIGTERM
//     under load drains every in-flight transaction.
//   - TestSpandSnapshot, TestSpandRedisRestart: spand keeps what it
//     learned across a restart, and across a Redis restart loses no
//     report it accepted.
//   - TestBadInput: malformed ICAP on a raw socket, an image bomb, a gzip
//     bomb and a 1 GB body through Squid get their documented outcome
//     with bounded memory.
//
// The tests build the binaries once (go build) and run them as child
// processes. The load test runs for SYSTEST_LOAD_DURATION (default 25s;
// the README's figures use 5m); SYSTEST_HUGE_BYTES sets the size of the
// huge body (default 1 GiB); SYSTEST_FAILURE_LIMIT Squid's
// icap_service_failure_limit in TestICAPDFailover (default -1). With -v the tests print a table of the figures they measured.
package systest
