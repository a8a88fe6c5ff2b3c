#!/usr/bin/env bash
# Benchmarks package transcode against vipsthumbnail on the shared corpus
# and prints markdown tables (see bench/transcode/main.go). Needs
# libvips-dev and libvips-tools. ROUNDS (default 5) sets the repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v vipsthumbnail >/dev/null || { echo "vipsthumbnail missing: apt-get install -y libvips-tools" >&2; exit 1; }
bin=$(mktemp -d)/transcode-bench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -tags vips -o "$bin" ./bench/transcode
"$bin" -corpus "$(pwd)/../shared/corpus" -rounds "${ROUNDS:-5}"
