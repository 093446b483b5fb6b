#!/usr/bin/env bash
# with-servers.sh CMD...: start the test servers the suite needs that are
# not in-process (ZooKeeper), export their addresses, run CMD, and stop
# them by PID whatever happens (failure, Ctrl-C).
#
# etcd runs embedded in the tests and the Nacos test server in-process, so
# ZooKeeper is the only outside server today. A DETOUR_ZK_ADDR already set
# is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DETOUR_ZK_ADDR:-}" ]; then
  zkdir=$(mktemp -d /tmp/detour-zk.XXXXXX)
  stop_zk() { bash scripts/zookeeper.sh stop "$zkdir" || true; rm -rf "$zkdir"; }
  trap stop_zk EXIT
  trap 'exit 130' INT TERM
  # claim_port PORT: PORT is this run's, under an flock on a file in
  # $TMPDIR (held until this script and what it runs exit, so two runs at
  # once never take the same port), and nothing listens on it.
  claim_port() {
    exec {zk_lock}<>"${TMPDIR:-/tmp}/detour-zk-port-$1.lock" || return 1
    if flock -n "$zk_lock" && ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    exec {zk_lock}>&-
    return 1
  }
  if [ -n "${ZK_PORT:-}" ]; then
    claim_port "$ZK_PORT" || { echo "with-servers: ZK_PORT=$ZK_PORT is taken (another run?); set another or leave it unset" >&2; exit 1; }
  else # the first free port from 21810
    for ZK_PORT in $(seq 21810 21899) ''; do
      [ -n "$ZK_PORT" ] || { echo "with-servers: no free port for ZooKeeper in 21810-21899" >&2; exit 1; }
      claim_port "$ZK_PORT" && break
    done
    export ZK_PORT
  fi
  out=$(bash scripts/zookeeper.sh start "$zkdir")
  echo "$out"
  addr=$(printf '%s\n' "$out" | sed -n 's/^DETOUR_ZK_ADDR=//p' | tail -n1)
  if [ -z "$addr" ]; then
    echo "with-servers: scripts/zookeeper.sh did not print DETOUR_ZK_ADDR" >&2
    exit 1
  fi
  export DETOUR_ZK_ADDR="$addr"
fi

"$@"
