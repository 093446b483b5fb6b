#!/usr/bin/env bash
# Installs what the data-path benchmarks compare against and drive the load
# with, from Debian: nginx (light, plus its stream module), haproxy, wrk,
# iperf3. Idempotent: does nothing when all of them are there. Package
# scripts are kept from starting nginx or haproxy as system services
# (policy-rc.d), so nothing listens on port 80 afterwards.
set -euo pipefail

have_all() {
  command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_stream_module.so ] &&
    command -v haproxy >/dev/null && command -v wrk >/dev/null && command -v iperf3 >/dev/null &&
    command -v taskset >/dev/null
}
have_all && exit 0

die() { echo "bench-deps.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "nginx, haproxy, wrk or iperf3 is missing; run as root to install them (apt-get install nginx-light libnginx-mod-stream haproxy wrk iperf3)"
command -v apt-get >/dev/null 2>&1 || die "nginx, haproxy, wrk or iperf3 is missing and there is no apt-get"

echo "bench-deps.sh: installing nginx-light, libnginx-mod-stream, haproxy, wrk, iperf3 from Debian" >&2
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update >&2
# iperf3's package asks whether to start a daemon; the preseed says no.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections
apt-get install -y --no-install-recommends nginx-light libnginx-mod-stream haproxy wrk iperf3 util-linux >&2
have_all || die "installed the packages but a tool is still missing"
