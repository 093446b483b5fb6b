#!/usr/bin/env bash
# make bench: installs nginx, haproxy, wrk and iperf3 from Debian if they
# are missing, starts ZooKeeper, and runs bench/cmd/detour-bench, which
# measures and writes docs/BENCHMARKS.md. Arguments go to detour-bench
# (-quick for the short form, -cores 1,4 to force the configurations,
# -sidecar BIN or DETOUR_BENCH_SIDECAR=BIN to measure another sidecar
# binary, -h for the rest).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bench-deps.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/detour-bench" ./bench/cmd/detour-bench
bash scripts/with-servers.sh "$tmp/detour-bench" "$@"
