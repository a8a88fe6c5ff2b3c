#!/usr/bin/env bash
# Content negotiation end to end: page load time and bytes of a slow client
# (256 kbit/s tbf) and a fast one, with the repository's policy.toml and
# with a policy without rules, in Squid mode and in proxy mode, on a test
# bed of network namespaces (internal/e2e, TestNegotiationExperiment).
# Needs root, iproute2 and squid. Prints a markdown table of medians.
#
#   sudo bench/negotiate.sh                    # libvips engine, 5 + 100 loads per policy, both modes
#   sudo E2E_TAGS= bench/negotiate.sh          # the pure Go image engine
#   sudo E2E_RUNS=3 E2E_MODES=proxy bench/negotiate.sh
#
# E2E_RUNS: slow-client loads per policy (5); E2E_FAST_RUNS: fast-client
# loads per policy (100); E2E_MODES: squid,proxy; E2E_TAGS: build tags of
# icapd and spand (vips). About 7 minutes per mode, most of it the slow
# client's unadapted loads (1.6 MB at 256 kbit/s, 55 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
export E2E_EXPERIMENT=1 E2E_TAGS=${E2E_TAGS-vips}
table=$(mktemp)
trap 'rm -f "$table"' EXIT
rc=0
E2E_TABLE=$table go test -count=1 -timeout 60m -run '^TestNegotiationExperiment$' -v ./internal/e2e >&2 || rc=$?
# The table is written even when a check failed (a fast-client load that
# was not byte-identical, say): print it, then fail.
cat "$table"
exit $rc
