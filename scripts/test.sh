#!/usr/bin/env bash
# make test: lint, go test -race against real servers, then the quick form
# of every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/lint.sh
# Packages (issue 23): build .deb/.rpm, lintian, the units' security scores,
# then dpkg -i on this machine (root), run as the detour user, purge.
bash packaging/test.sh
bash scripts/bench-deps.sh # nginx, haproxy, wrk, iperf3 for the quick data-path benchmarks
# The Curator program (Java Dubbo's ZooKeeper use) that TestCurator runs
# against the ZooKeeper front end and the real ZooKeeper: a JDK and
# Debian's Curator packages installed if missing, compiled once.
bash scripts/curator.sh build bin/curator
export CURATOR_BIN=$PWD/bin/curator
# The etcd front end's clients nobody here wrote: go-zero's zrpc app
# (TestGoZeroFrontEnds, built apart) and Debian's etcdctl (TestEtcdctl).
GOZERO_BIN=$(bash scripts/gozero.sh build bin/gozero)
ETCDCTL=$(bash scripts/etcdctl.sh)
export GOZERO_BIN ETCDCTL
# Jaeger's all-in-one, the real OTLP collector of TestTracesAtJaeger, built
# in a scratch module outside the repo (minutes the first time, then seconds).
bash scripts/jaeger.sh build bin/jaeger
export DETOUR_JAEGER=$PWD/bin/jaeger/jaeger
bash scripts/with-servers.sh bash -c '
  set -euo pipefail
  go test -race -count=1 -timeout 25m ./...
  echo "== real dubbo-go apps (integration/dubbogo, a module of its own) =="
  bash scripts/dubbogo.sh test
  echo "== quick benchmarks (the full ones: make bench) =="
  go test -run "^\$" -bench . -benchtime 10x -count=1 -timeout 10m ./...
  go run ./bench/cmd/detour-bench -quick # the data path beside nginx and haproxy, and the report
'
