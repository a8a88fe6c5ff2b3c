#!/usr/bin/env bash
# Overhead of congestion.Conn against plain writes on loopback TCP (cubic,
# 64 KiB writes; modes plain, conn = the default Conn, conn16k = a Conn with
# a 16 KiB TCP_NOTSENT_LOWAT): runs BenchmarkWrite COUNT times (default 5,
# the modes interleaved) and prints the
# medians of throughput and of process CPU time per MB (getrusage: user +
# system, both ends of the connection), and the Conn/plain ratios. The
# target is a CPU ratio of at most 1.05.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${COUNT:-5}
out=$(go test -run '^$' -bench '^BenchmarkWrite$' -benchtime "${BENCHTIME:-2s}" -count "$count" -timeout 20m ./congestion)
echo "$out" | grep '^BenchmarkWrite'
echo "$out" | awk '
/^BenchmarkWrite\// {
	split($1, a, "/"); mode = a[2]; sub(/-[0-9]+$/, "", mode)
	for (i = 2; i <= NF; i++) {
		if ($i == "MB/s") mbs[mode] = mbs[mode] " " $(i-1)
		if ($i == "cpu-ns/MB") cpu[mode] = cpu[mode] " " $(i-1)
	}
}
function median(s,   n, v, i, j, t) {
	n = split(s, v, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
END {
	printf "%-6s %12s %14s\n", "mode", "MB/s", "cpu-ns/MB"
	for (m in mbs) printf "%-6s %12.1f %14.0f\n", m, median(mbs[m]), median(cpu[m])
	for (m in mbs) if (m != "plain")
		printf "ratio %s/plain: throughput %.3f, cpu per MB %.3f (target <= 1.05)\n", m, median(mbs[m]) / median(mbs["plain"]), median(cpu[m]) / median(cpu["plain"])
}'
