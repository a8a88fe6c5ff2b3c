#!/usr/bin/env bash
# Small objects through icapd's proxy on loopback, with the congestion
# manager and without (-proxy-cm=false): BenchmarkProxySmall of
# internal/icapd (10 KB and 100 KB bodies, back to back over one
# keep-alive connection, over a fresh connection per request, and after
# 50 ms of think time on a keep-alive connection; every socket cubic).
# The test binary is built once and run ROUNDS times (default 8), each
# round all cases in turn, so that cm and nocm are interleaved on a noisy
# machine.
# Prints, per case, the medians over the rounds of the wall time and of
# the process's CPU time per request (client, proxy and origin are one
# process), and the cm/nocm ratios of the medians and the median of the
# per-round ratios. BENCHTIME (default 100x: a think case takes 100 times
# 50 ms) is each case's -benchtime.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-8}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/icapd.test" ./internal/icapd
for ((i = 1; i <= rounds; i++)); do
	(cd internal/icapd && "$dir/icapd.test" -test.run '^$' -test.bench '^BenchmarkProxySmall$' \
		-test.benchtime "${BENCHTIME:-100x}" -test.timeout 20m) | grep '^BenchmarkProxySmall/' | sed "s/^/round=$i /"
done | tee "$dir/raw" >&2
awk '
function median(s,   n, v, i, j, t) {
	n = split(s, v, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
	round = $1; sub(/^round=/, "", round)
	split($2, a, "/"); c = a[2] "/" a[3]; mode = a[4]; sub(/-[0-9]+$/, "", mode)
	for (i = 3; i <= NF; i++) {
		if ($i == "ns/op") wall[c, mode, round] = $(i-1)
		if ($i == "cpu-ns/op") cpu[c, mode, round] = $(i-1)
	}
	if (!(c in seen)) { seen[c] = 1; order[++ncases] = c }
	if (round > nr) nr = round
}
END {
	print "| case | rounds | wall cm µs | wall nocm µs | wall cm/nocm | median of round ratios | cpu cm µs | cpu nocm µs | cpu cm/nocm | median of round ratios |"
	print "|---|---|---|---|---|---|---|---|---|---|"
	for (k = 1; k <= ncases; k++) {
		c = order[k]; wc = wn = cc = cn = rw = rc = ""; n = 0
		for (r = 1; r <= nr; r++) {
			if (!((c, "cm", r) in wall) || !((c, "nocm", r) in wall)) continue
			n++
			wc = wc " " wall[c, "cm", r]; wn = wn " " wall[c, "nocm", r]
			cc = cc " " cpu[c, "cm", r]; cn = cn " " cpu[c, "nocm", r]
			rw = rw " " wall[c, "cm", r] / wall[c, "nocm", r]
			rc = rc " " cpu[c, "cm", r] / cpu[c, "nocm", r]
		}
		printf "| %s | %d | %.0f | %.0f | %.2f | %.2f | %.0f | %.0f | %.2f | %.2f |\n", c, n,
			median(wc) / 1000, median(wn) / 1000, median(wc) / median(wn), median(rw),
			median(cc) / 1000, median(cn) / 1000, median(cc) / median(cn), median(rc)
	}
}' "$dir/raw"
