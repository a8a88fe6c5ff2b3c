#!/usr/bin/env bash
# CPU overhead of congestion.Conn against plain writes on loopback TCP
# (cubic, 64 KiB writes; the target is a ratio of at most 1.05). Runs
# bench/cm/overhead: many short interleaved plain/Conn pairs in one
# process, CPU time from getrusage (user + system, both ends of the
# connection), the median of the per-pair ratios with its 95% confidence
# interval, and the load average before and after. Flags go to the
# program, e.g. bench/cm/overhead.sh -pairs 401 -mb 128. ROUNDS (default 3)
# repeats the whole measurement, so the spread between rounds shows too.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/overhead" ./bench/cm/overhead
for ((i = 1; i <= ${ROUNDS:-3}; i++)); do
	echo "--- round $i"
	"$bin/overhead" "$@"
done
