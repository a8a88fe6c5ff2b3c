#!/usr/bin/env bash
# Prediction latency of a running `spand -serve` over loopback HTTP, with
# wrk, against two peers in the same run: the same server's /healthz (the
# floor of Go's HTTP server on this machine: same process, same
# connections, no work) and redis-server answering GET over loopback (the
# floor of any networked key-value answer). The server is filled with 32
# reports for each of 1024 hosts first; every request asks for one of
# them (a Lua script walks the hosts, which costs wrk more CPU; the
# predict row compared with /healthz asks for one host, so that wrk does
# the same work for both). Prints p50/p99 per tool and
# concurrency, the ratio of /v1/predict's p99 to /healthz's, and the load
# average (the machine is shared: p99 follows the load).
#
#   bench/spand-predict.sh              # from the repository root
#   SECONDS_PER_RUN=10 bench/spand-predict.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${SECONDS_PER_RUN:-5}
for p in wrk redis-server redis-benchmark curl; do
	command -v $p >/dev/null || { echo "needs $p"; exit 1; }
done
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
go build -o "$tmp/spand" ./cmd/spand
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/spand" -serve 127.0.0.1:$port -rate-limit -1 -max-batch 1024 2>"$tmp/spand.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.05; done

# 32 batches of 1024 reports, one per host each.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for s in $(seq 32); do
	{
		printf '{"reports":['
		for h in $(seq 0 1023); do
			[ "$h" -gt 0 ] && printf ','
			printf '{"local":"10.0.0.5","remote":"198.18.%d.%d","class":"web","start":"%s","duration_s":1,"bytes":%d,"throughput":%d}' \
				$((h / 256)) $((h % 256)) "$now" $((1000 * s + h)) $((1000 * s + h))
		done
		printf ']}'
	} >"$tmp/batch.json"
	curl -sS -H "Content-Type: application/json" --data-binary @"$tmp/batch.json" http://127.0.0.1:$port/v1/reports | grep -q accepted || { echo "POST failed: $(cat "$tmp/spand.log" | tail -1)"; exit 1; }
done
cat >"$tmp/predict.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 1024
  return wrk.format("GET", string.format("/v1/predict?addr=198.18.%d.%d&class=web", math.floor(i / 256), i % 256))
end
LUA
curl -sf "http://127.0.0.1:$port/v1/predict?addr=198.18.1.2&class=web" | grep -q '"source":"host"' || { echo "server did not learn"; exit 1; }

rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --loglevel warning >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

# us converts wrk's "123.45us", "1.23ms" or "1.02s" to microseconds.
us() { awk '{v = $1 + 0; if ($1 ~ /us$/) print v; else if ($1 ~ /ms$/) print v * 1000; else print v * 1e6}' <<<"$1"; }
# wrkrow WHAT CONNS ARGS...: runs wrk and prints a row; sets $p99us.
wrkrow() {
	local what=$1 c=$2 out rps p50 p99
	shift 2
	out=$(wrk -t$((c > 1 ? 2 : 1)) -c"$c" -d"${dur}s" --latency "$@")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	p99us=$(us "$p99")
	printf "%-34s %6d %10s %10s %10s\n" "$what" "$c" "$rps" "$p50" "$p99"
}
printf "%-34s %6s %10s %10s %10s\n" "what" "conns" "req/s" "p50" "p99"
for c in 1 16; do
	wrkrow "spand GET /v1/predict (one host)" $c "http://127.0.0.1:$port/v1/predict?addr=198.18.1.2&class=web"
	pp=$p99us
	wrkrow "spand GET /healthz" $c "http://127.0.0.1:$port/healthz"
	awk -v a="$pp" -v b="$p99us" -v c=$c 'BEGIN {printf "%-34s %6d %32.2fx\n", "p99 ratio predict/healthz", c, a / b}'
	wrkrow "spand GET /v1/predict (1024 hosts)" $c -s "$tmp/predict.lua" "http://127.0.0.1:$port"
	n=$((c == 1 ? 50000 : 200000))
	out=$(redis-benchmark -p "$rport" -t get -n $n -c $c --precision 3 2>/dev/null | tr '\r' '\n')
	rps=$(awk '/throughput summary/ {print $3}' <<<"$out")
	read -r p50 p99 < <(awk '/latency summary/ {getline; getline; print $3"ms", $5"ms"}' <<<"$out")
	printf "%-34s %6d %10s %10s %10s\n" "redis GET (redis-benchmark)" "$c" "$rps" "$p50" "$p99"
done
echo "(load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs; in-process: go test -run '^\$' -bench Predict -benchmem ./spand/)"
