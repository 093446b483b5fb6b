#!/usr/bin/env bash
# Benchmarks with real servers. BENCHTIME sets -benchtime (200x for the
# figures in the docs, 20x for a quick check).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BENCHTIME:=200x}"
bash scripts/with-servers.sh go test -run '^$' -bench . -benchtime "$BENCHTIME" -count=1 -timeout 30m ./...
