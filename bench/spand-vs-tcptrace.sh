#!/usr/bin/env bash
# Offline speed of spand against tcptrace and tshark, in the same run, on
# zeek-echo-connections (82,582 packets, 500 connections), decompressed
# first. Each tool reads the same raw pcap file from the page cache and
# writes its per-connection output to /dev/null. RUNS runs (default 3);
# the table gives medians of wall-clock and CPU (user+sys) rates and the
# ratio to tcptrace (wall and CPU). It also runs BenchmarkTrackEcho
# (decode + track from memory, one core) for the in-process figure.
# SPAND_BASE=FILE adds a row for another spand binary (a baseline build),
# measured in the same runs.
#
#   bench/spand-vs-tcptrace.sh            # from the repository root
#   RUNS=5 bench/spand-vs-tcptrace.sh
#   SPAND_BASE=/tmp/spand-old RUNS=7 bench/spand-vs-tcptrace.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
corpus=../shared/corpus/pcap/zeek-echo-connections.pcap.gz
for p in tcptrace tshark; do
	command -v $p >/dev/null || { echo "needs $p (apt-get install $p)"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gunzip -c "$corpus" >"$tmp/echo.pcap"
go build -o "$tmp/spand" ./cmd/spand
pkts=82582

# measure CMD...: runs CMD $reps times and prints "wall cpu" seconds per
# run (wall from date, CPU user+sys from GNU time over the loop: its 10 ms
# resolution needs the repetitions).
reps=${REPS:-10}
measure() {
	local t0 t1 cpu
	t0=$(date +%s.%N)
	/usr/bin/time -o "$tmp/time" -f "%U %S" bash -c 'for ((k = 0; k < $0; k++)); do "$@" >/dev/null 2>&1; done' "$reps" "$@"
	t1=$(date +%s.%N)
	cpu=$(tail -1 "$tmp/time")
	awk -v a="$t0" -v b="$t1" -v r="$reps" '{printf "%.5f %.5f\n", (b - a) / r, ($1 + $2) / r}' <<<"$cpu"
}
declare -A wall cpu
tools=(spand tcptrace tshark)
[[ -n ${SPAND_BASE:-} ]] && tools=(spand spand-base tcptrace tshark)
for ((i = 0; i < runs; i++)); do
	for t in "${tools[@]}"; do
		case $t in
		spand) r=$(measure "$tmp/spand" -r "$tmp/echo.pcap" -o json) ;;
		spand-base) r=$(measure "$SPAND_BASE" -r "$tmp/echo.pcap" -o json) ;;
		tcptrace) r=$(measure tcptrace -n -l -r "$tmp/echo.pcap") ;;
		tshark) r=$(measure tshark -n -r "$tmp/echo.pcap" -q -z conv,tcp) ;;
		esac
		wall[$t]+="${r% *} "
		cpu[$t]+="${r#* } "
	done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf "\n%-10s %12s %14s %12s %14s %10s %10s\n" tool "wall s" "packets/s" "cpu s" "packets/cpu-s" "wall ratio" "cpu ratio"
tw=$(median <<<"${wall[tcptrace]}")
tc=$(median <<<"${cpu[tcptrace]}")
for t in "${tools[@]}"; do
	w=$(median <<<"${wall[$t]}")
	c=$(median <<<"${cpu[$t]}")
	awk -v t="$t" -v w="$w" -v c="$c" -v n=$pkts -v tw="$tw" -v tc="$tc" 'BEGIN {
		cr = (c > 0) ? n / c : 0
		printf "%-10s %12.4f %14.0f %12.4f %14.0f %9.2fx %9.2fx\n", t, w, n / w, c, cr, tw / w, (c > 0 ? tc / c : 0) }'
done

# In-process: decode + track from memory, one goroutine (the issue's
# benchmark), medians of the runs.
go test -run '^$' -bench 'BenchmarkTrackEcho' -benchmem -count "$runs" ./spand/track | grep '^Benchmark' >"$tmp/bench"
col() { awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}' "$tmp/bench" | median; }
pw=$(col packets/s)
pc=$(col packets/cpu-s)
allocs=$(col allocs/op)
awk -v w="$pw" -v c="$pc" -v tw="$tw" -v tc="$tc" -v n=$pkts -v a="$allocs" 'BEGIN {
	printf "%-10s %12.4f %14.0f %12.4f %14.0f %9.2fx %9.2fx  (decode+track in memory, %s allocs/packet)\n", "spand-mem", n / w, w, n / c, c, tw / (n / w), tc / (n / c), a }'
echo "(median of $runs runs; processes: $reps repetitions each; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
