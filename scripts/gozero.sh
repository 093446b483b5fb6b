#!/usr/bin/env bash
# gozero.sh build OUTDIR: builds gozero-app, the go-zero v1.10.3 zrpc test
# app of integration/gozero (a Go module of its own: go-zero pins etcd's
# 3.5 client, which stays out of detour's go.mod), into OUTDIR, and
# prints OUTDIR/gozero-app. Quick when nothing changed: OUTDIR keeps a
# stamp of the sources and the toolchain. The first build on a machine
# downloads and compiles go-zero (8 min measured on this loaded 2-core
# machine); after that a rebuild is seconds. Builds are serialized with
# an flock on $TMPDIR/detour-gozero-build.lock; the binary is built
# beside OUTDIR's and renamed into place.
#
# integration's TestGoZeroFrontEnds runs it with GOZERO_BIN=OUTDIR/gozero-app.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=integration/gozero
die() { echo "gozero.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] && [ "$1" = build ] && [ -n "$2" ] || { echo "usage: $0 build OUTDIR" >&2; exit 2; }
out=$2
stamp() {
  go version
  go env GOOS GOARCH CGO_ENABLED GOFLAGS
  (cd "$mod" && find . -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum && sha256sum go.mod go.sum)
}
command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH"
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$SECONDS
lock="${TMPDIR:-/tmp}/detour-gozero-build.lock"
exec {lockfd}>"$lock" || die "cannot open $lock"
if ! flock -n "$lockfd"; then
  echo "gozero.sh: waiting for another build (lock $lock)" >&2
  flock "$lockfd"
fi
new=$(stamp) || die "cannot read the sources of $mod"
if [ -x "$out/gozero-app" ] && [ "$(cat "$out/.gozero.stamp" 2>/dev/null)" = "$new" ]; then
  echo "gozero.sh: $out is up to date ($((SECONDS - start))s)" >&2
  echo "$out/gozero-app"
  exit 0
fi
echo "gozero.sh: building gozero-app into $out (the first on a machine compiles all of go-zero: minutes)" >&2
tmp=$(mktemp -d "$out/.build.XXXXXX")
if ! (cd "$mod" && go build -buildvcs=false -o "$tmp/" ./cmd/gozero-app); then
  rm -rf "$tmp"
  die "go build in $mod failed (a toolchain older than $mod/go.mod asks, or no module proxy for a cold cache?)"
fi
mv -f "$tmp/gozero-app" "$out/"
rmdir "$tmp"
printf '%s\n' "$new" >"$out/.gozero.stamp"
echo "gozero.sh: built in $((SECONDS - start))s" >&2
echo "$out/gozero-app"
