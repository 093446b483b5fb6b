#!/usr/bin/env bash
# etcdctl.sh: prints the path of etcdctl (Debian's etcd-client), installing
# it first when it is missing and this runs as root with apt-get. The etcd
# front end's TestEtcdctl runs it (ETCDCTL=$(bash scripts/etcdctl.sh)).
set -euo pipefail
die() { echo "etcdctl.sh: $*" >&2; exit 1; }
if ! command -v etcdctl >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "etcdctl is missing; run as root so this script can install it (apt-get install etcd-client)"
  command -v apt-get >/dev/null 2>&1 || die "etcdctl is missing, and there is no apt-get to install it"
  DEBIAN_FRONTEND=noninteractive apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-client >&2
fi
command -v etcdctl
