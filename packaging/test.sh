#!/usr/bin/env bash
# test.sh: the package test of `make test` (issue 23). Builds both packages,
# checks the units (check-units.sh) and lintian, then on this machine (as
# root): dpkg -i, files, user, dirs, the installed units verified in full,
# the installed binaries run from the installed config as the detour user,
# a conffile edit kept byte-identical across a reinstall, and purge. The
# machine is left as found: a run holds a lock (runs on one machine do not
# collide), refuses to touch a detour it did not install, and purges (and
# deletes the user it created) on every exit.
# CI: a fresh Debian with Go; what is missing is installed (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "packaging/test.sh: needs root (dpkg -i)"; exit 1; }

need() { # need CMD PACKAGE
	command -v "$1" >/dev/null && return
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need systemd-analyze systemd
need lintian lintian
need adduser adduser
need curl curl

exec 9>/var/lock/detour-package-test.lock
flock -w 900 9 || { echo "another package test holds the lock"; exit 1; }
if dpkg-query -W -f '${Status}' detour 2>/dev/null | grep -q "installed"; then
	echo "packaging/test.sh: detour is installed on this machine already; not touching it" >&2
	exit 1
fi
had_user=$(getent passwd detour >/dev/null && echo 1 || true)

DIST=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	dpkg --purge detour >/dev/null 2>&1 || true
	if [ -z "$had_user" ]; then
		userdel detour 2>/dev/null || true
		groupdel detour 2>/dev/null || true
	fi
	rm -rf "$DIST"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== build =="
DIST=$DIST bash packaging/build.sh
deb=$(ls "$DIST"/detour_*.deb)
rpm=$(ls "$DIST"/detour-*.rpm)
[ -s "$rpm" ] || fail "no rpm"
echo "== units (source) =="
bash packaging/check-units.sh
echo "== lintian =="
tags=$(lintian "$deb" 2>&1 | grep -E '^[EWI]: ' || true)
[ -z "$tags" ] || fail "lintian: $tags"
echo "lintian: clean (overrides: $(lintian --show-overrides "$deb" 2>&1 | grep -c '^O: '))"

echo "== dpkg -i =="
dpkg -i "$deb" </dev/null
getent passwd detour | grep -q ':/var/lib/detour:' || fail "user detour: $(getent passwd detour)"
[ "$(stat -c %U:%G:%a /var/lib/detour)" = detour:detour:750 ] || fail "/var/lib/detour: $(stat -c %U:%G:%a /var/lib/detour)"
[ "$(stat -c %U:%G:%a /etc/detour/agent.yaml)" = root:detour:640 ] || fail "agent.yaml: $(stat -c %U:%G:%a /etc/detour/agent.yaml)"
for f in /usr/bin/naming-agent /usr/bin/sidecar /usr/bin/detourctl /lib/systemd/system/detour-agent.service \
	/lib/systemd/system/detour-sidecar.service /usr/share/man/man8/naming-agent.8.gz /usr/share/doc/detour/OPERATIONS.md.gz; do
	[ -e "$f" ] || fail "missing $f"
done
dpkg-query -W -f '${Conffiles}\n' detour | grep -q /etc/detour/agent.yaml || fail "agent.yaml is not a conffile"
for b in naming-agent sidecar detourctl; do
	v=$(/usr/bin/$b --version)
	echo "$v"
	case $v in *"(commit "*) ;; *) fail "$b --version has no commit: $v" ;; esac
	file -b /usr/bin/$b 2>/dev/null | grep -q "statically linked" || ldd /usr/bin/$b 2>&1 | grep -q "not a dynamic" || fail "$b is not static"
done
echo "== units (installed, verify with man pages) =="
bash packaging/check-units.sh /lib/systemd/system

echo "== edit the conffile: free ports, so runs on one machine do not collide =="
# Outside the ingress and egress ranges below, which the agent refuses
# its own ports in (the kernel's ephemeral range covers them).
read -r http grpc admin health client peer < <(python3 -c '
import socket
ss=[]
while len(ss) < 6:
    s=socket.socket(); s.bind(("127.0.0.1",0))
    if not 40000 <= s.getsockname()[1] <= 41999: ss.append(s)
print(*[s.getsockname()[1] for s in ss])')
cat >>/etc/detour/agent.yaml <<YAML
# edited by packaging/test.sh
YAML
sed -i "s#^http_listen: .*#http_listen: 127.0.0.1:$http#; s#^grpc_listen: .*#grpc_listen: 127.0.0.1:$grpc#; s#^  admin: .*#  admin: 127.0.0.1:$admin#" /etc/detour/agent.yaml
cat >>/etc/detour/agent.yaml <<YAML
ports: {health: $health, ingress: {from: 40000, to: 40999}, egress: {from: 41000, to: 41999}}
YAML
sed -i "s#^  url: embedded#  url: embedded\n  embedded: {client_listen: 127.0.0.1:$client, peer_listen: 127.0.0.1:$peer}#" /etc/detour/agent.yaml
sum=$(sha256sum /etc/detour/agent.yaml)
runuser -u detour -- /usr/bin/naming-agent --config /etc/detour/agent.yaml --check-config
echo "bogus_key: 1" >/tmp/detour-bad.$$.yaml
out=$(runuser -u detour -- /usr/bin/naming-agent --config /tmp/detour-bad.$$.yaml --check-config 2>&1) && fail "bad config accepted"
rm -f /tmp/detour-bad.$$.yaml
echo "bad config: $out"
case $out in *"detour-bad.$$.yaml:1: field bogus_key not found"*) ;; *) fail "bad config error does not name file, line, field" ;; esac

echo "== run the installed binaries as detour =="
chmod 1777 "$DIST" # the sidecar's PID file
setpriv --reuid=detour --regid=detour --init-groups /usr/bin/naming-agent --config /etc/detour/agent.yaml >"$DIST/agent.log" 2>&1 &
pids+=($!)
wait_for() { # wait_for WHAT CMD...: poll up to 60s
	local what=$1 end=$((SECONDS + 60))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || { cat "$DIST"/*.log; fail "timed out waiting for $what"; }
		sleep 0.2
	done
}
wait_for "agent API" curl -fsS "http://127.0.0.1:$http/v1/status"
setpriv --reuid=detour --regid=detour --init-groups /usr/bin/sidecar --agent "127.0.0.1:$grpc" --admin "127.0.0.1:$admin" \
	--agent-secret-file /var/lib/detour/sidecar.secret --pid-file "$DIST/sidecar.pid" >"$DIST/sidecar.log" 2>&1 &
pids+=($!)
wait_for "sidecar ready" curl -fsS "http://127.0.0.1:$admin/ready"
# the agent has seen the sidecar ready (its probe threshold) and says so
up() { runuser -u detour -- /usr/bin/detourctl --agent "http://127.0.0.1:$http" status | grep -q '^sidecar: *up '; }
wait_for "detourctl status: sidecar up" up
runuser -u detour -- /usr/bin/detourctl --agent "http://127.0.0.1:$http" status
# the installed sidecar hands over to a fresh start of itself (an upgrade)
old=$(cat "$DIST/sidecar.pid")
runuser -u detour -- /usr/bin/sidecar --reload --pid-file "$DIST/sidecar.pid"
new=$(cat "$DIST/sidecar.pid")
{ [ "$new" != "$old" ] && kill -0 "$new"; } || fail "reload: pid file $old -> $new"
pids+=("$new")
wait_for "sidecar ready after the reload" curl -fsS "http://127.0.0.1:$admin/ready"
wait_for "detourctl status: sidecar up after the reload" up
head -c 300 "$DIST/agent.log" | grep -q '^{"level":"info"' || fail "agent log is not JSON lines: $(head -c 300 "$DIST/agent.log")"
[ "$(stat -c %U /var/lib/detour/sidecar.secret)" = detour ] || fail "agent's data not owned by detour"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()

echo "== reinstall: the edited conffile is kept byte-identical =="
dpkg -i "$deb" </dev/null
[ "$(sha256sum /etc/detour/agent.yaml)" = "$sum" ] || fail "agent.yaml changed by the reinstall"
echo "== remove keeps config and data; purge deletes them =="
dpkg --remove detour
[ -f /etc/detour/agent.yaml ] && [ -d /var/lib/detour ] || fail "remove deleted config or data"
dpkg --purge detour
[ ! -e /etc/detour ] && [ ! -e /var/lib/detour ] || fail "purge left /etc/detour or /var/lib/detour"
echo "packaging/test.sh: PASS"
