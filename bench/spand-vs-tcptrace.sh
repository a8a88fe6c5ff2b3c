#!/usr/bin/env bash
# Offline speed of the whole `spand -r` process against `tcptrace -n -l -r`
# (the issue's peer), in the same run, on every capture of the corpus
# (decompressed first) and on echo-x10, zeek-echo-connections repeated ten
# times 20 s apart (825,820 packets, 68 MB; made with editcap and
# mergecap), where start-up no longer dominates. Each tool reads the same
# file from the page cache and writes its per-connection output to
# /dev/null: spand one JSON line per connection (-o json), tcptrace its
# long listing (-l). Rows "tcptrace-brief" (tcptrace -n, one short block
# per connection) and "spand-table" (-o table) show what the output
# volume costs either tool; tshark (-q -z conv,tcp) runs on the echo file
# only.
#
# spand is built as released (CGO_ENABLED=0, a static binary, as
# docker/Dockerfile.spand builds it) and, for the "spand-cgo" row, with
# the plain `go build` default (cgo on, so the net package links libc and
# the process starts through the dynamic loader, about 1.5 ms more).
#
# Timing: hyperfine -N (no shell in between), REPS runs per tool per
# round, RUNS rounds with the tools interleaved; each figure is the median
# over rounds of the per-round median wall time (and of the mean CPU time,
# user + system, less sensitive to other load on the machine). "ratio" is
# tcptrace's time over the tool's (above 1: faster than tcptrace). The last
# lines give the median ratio over all files and the in-process
# decode+track rate (BenchmarkTrackEcho, one goroutine).
#
#   bench/spand-vs-tcptrace.sh                 # from the repository root
#   RUNS=5 REPS=10 bench/spand-vs-tcptrace.sh
#   FILES="zeek-echo-connections echo-x10" bench/spand-vs-tcptrace.sh
#   SPAND_BASE=/tmp/spand-old bench/spand-vs-tcptrace.sh   # adds a baseline row
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
reps=${REPS:-10}
corpus=../shared/corpus/pcap
for p in tcptrace tshark hyperfine editcap mergecap capinfos jq; do
	command -v $p >/dev/null || { echo "needs $p (apt-get install tcptrace tshark hyperfine jq)"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/spand" ./cmd/spand
go build -o "$tmp/spand-cgo" ./cmd/spand

# The captures, uncompressed, and echo-x10.
for f in "$corpus"/*.pcap "$corpus"/*.pcap.gz; do
	n=$(basename "$f")
	n=${n%.gz}
	n=${n%.pcap}
	if [[ $f == *.gz ]]; then gunzip -c "$f" >"$tmp/$n.pcap"; else cp "$f" "$tmp/$n.pcap"; fi
done
parts=()
for i in $(seq 0 9); do
	editcap -t $((i * 20)) "$tmp/zeek-echo-connections.pcap" "$tmp/part$i.pcap"
	parts+=("$tmp/part$i.pcap")
done
mergecap -a -F pcap -w "$tmp/echo-x10.pcap" "${parts[@]}"
rm -f "${parts[@]}"
files=${FILES:-$(cd "$tmp" && ls *.pcap | sed 's/\.pcap$//' | sort)}

# one FILE TOOL: prints the median wall seconds of $reps runs and their
# mean CPU seconds (user + system).
one() {
	local f=$tmp/$1.pcap cmd
	case $2 in
	spand) cmd="$tmp/spand -r $f -o json" ;;
	spand-cgo) cmd="$tmp/spand-cgo -r $f -o json" ;;
	spand-table) cmd="$tmp/spand -r $f -o table" ;;
	spand-base) cmd="$SPAND_BASE -r $f -o json" ;;
	tcptrace) cmd="tcptrace -n -l -r $f" ;;
	tcptrace-brief) cmd="tcptrace -n -r $f" ;;
	tshark) cmd="tshark -n -r $f -q -z conv,tcp" ;;
	esac
	hyperfine -N -w 1 -r "$reps" --output=null --export-json "$tmp/h.json" "$cmd" >/dev/null 2>&1
	jq -r '.results[0] | "\(.median) \(.user + .system)"' "$tmp/h.json"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A wall cpu
ratios=""
cratios=""
printf "%-24s %7s  %-15s %9s %11s %8s %9s %9s\n" file packets tool "wall ms" "packets/s" ratio "cpu ms" "cpu ratio"
for file in $files; do
	pkts=$(capinfos -c -M "$tmp/$file.pcap" | awk '/Number of packets/ {print $NF}')
	tools=(spand spand-cgo spand-table tcptrace tcptrace-brief)
	[[ -n ${SPAND_BASE:-} ]] && tools+=(spand-base)
	[[ $file == zeek-echo-connections ]] && tools+=(tshark)
	for t in "${tools[@]}"; do wall[$t]="" cpu[$t]=""; done
	for ((i = 0; i < runs; i++)); do
		for t in "${tools[@]}"; do
			read -r w c < <(one "$file" "$t")
			wall[$t]+="$w " cpu[$t]+="$c "
		done
	done
	tw=$(median <<<"${wall[tcptrace]}")
	tc=$(median <<<"${cpu[tcptrace]}")
	for t in "${tools[@]}"; do
		w=$(median <<<"${wall[$t]}")
		c=$(median <<<"${cpu[$t]}")
		awk -v f="$file" -v t="$t" -v w="$w" -v c="$c" -v n="$pkts" -v tw="$tw" -v tc="$tc" 'BEGIN {
			printf "%-24s %7d  %-15s %9.2f %11.0f %7.2fx %9.2f %8.2fx\n", f, n, t, w * 1000, n / w, tw / w, c * 1000, tc / c }'
	done
	ratios+="$(awk -v w="$(median <<<"${wall[spand]}")" -v tw="$tw" 'BEGIN {print tw / w}') "
	cratios+="$(awk -v c="$(median <<<"${cpu[spand]}")" -v tc="$tc" 'BEGIN {print tc / c}') "
done
echo "median ratio tcptrace/spand over the files: wall $(median <<<"$ratios")x, cpu $(median <<<"$cratios")x ($(wc -w <<<"$ratios") files)"

# In-process: decode + track from memory, one goroutine (the issue's
# benchmark), medians of the runs.
go test -run '^$' -bench 'BenchmarkTrackEcho' -benchmem -count "$runs" ./spand/track | grep '^Benchmark' >"$tmp/bench"
col() { awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}' "$tmp/bench" | median; }
echo "in memory (BenchmarkTrackEcho): $(col packets/s) packets/s, $(col packets/cpu-s) packets/cpu-s, $(col allocs/op) allocs/packet"
echo "(rounds: $runs, runs per round: $reps; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
