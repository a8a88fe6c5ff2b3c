#!/usr/bin/env bash
# Benchmarks icapd against c-icap 0.5.10's echo service with the same
# load generator (cmd/icapbench), in the same run, on loopback, and prints
# a markdown table of medians. See bench/README.md.
#
#   bench/icap-vs-cicap.sh                 # 3 rounds of 3 s per cell
#   bench/icap-vs-cicap.sh -rounds 5 -d 5s # longer
#
# Needs: go, c-icap (Debian package c-icap). Runs as any user; the 10,000
# idle connections need a file limit above 20,000, raised here.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec go run ./bench/icapvs "$@"
