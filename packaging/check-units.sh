#!/usr/bin/env bash
# check-units.sh [UNIT_DIR]: the shipped systemd units pass
# `systemd-analyze verify` and score <= MAX_EXPOSURE (2.5) with
# `systemd-analyze security --offline=true`. Needs no running systemd.
# Without UNIT_DIR it checks packaging/systemd, with the binaries' paths
# pointed at stand-ins and man pages not looked up (the installed copies
# are verified in full by packaging/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXPOSURE=${MAX_EXPOSURE:-2.5}
if ! command -v systemd-analyze >/dev/null; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
dir=${1:-}
verify_args=()
if [ -z "$dir" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	for b in naming-agent sidecar; do
		printf '#!/bin/sh\nexit 0\n' >"$tmp/$b"
		chmod +x "$tmp/$b"
	done
	for u in packaging/systemd/*.service; do
		sed "s#/usr/bin/#$tmp/#g" "$u" >"$tmp/$(basename "$u")"
	done
	dir=$tmp
	verify_args=(--man=no)
fi
fail=0
for u in "$dir"/detour-agent.service "$dir"/detour-sidecar.service; do
	out=$(systemd-analyze verify "${verify_args[@]}" "$u" 2>&1) || fail=1
	if [ -n "$out" ]; then
		echo "verify $u:"
		echo "$out"
		fail=1
	fi
	score=$(systemd-analyze security --offline=true "$u" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
	echo "$(basename "$u"): exposure $score (max $MAX_EXPOSURE), verify ${out:-clean}"
	if [ -z "$score" ] || ! awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
		echo "FAIL: $(basename "$u") exposure ${score:-unknown} > $MAX_EXPOSURE" >&2
		fail=1
	fi
done
exit $fail
