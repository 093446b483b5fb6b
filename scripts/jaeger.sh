#!/usr/bin/env bash
# jaeger.sh build OUTDIR: Jaeger's all-in-one binary (v1.75.0, the v2
# collector built on the OpenTelemetry Collector), the real OTLP collector
# TestTracesAtJaeger (sidecar/dataplane) sends the sidecars' spans to.
#
#   build OUTDIR  build OUTDIR/jaeger with the default (warm) module and
#                 build caches, printing how long it took. `go install
#                 .../cmd/jaeger@v1.75.0` refuses (Jaeger's go.mod has
#                 replace directives), so the build runs in a scratch module
#                 kept outside the repository, in $(go env GOCACHE)/../
#                 detour-jaeger: `go get -tool` pins Jaeger there, then
#                 `go build`. Neither Jaeger's code nor its dependencies
#                 enter detour's go.mod. Quick when nothing changed: OUTDIR
#                 keeps a stamp of the version and the toolchain, and an
#                 unchanged stamp skips the build. The first build on a
#                 machine downloads and compiles all of Jaeger and the
#                 OpenTelemetry Collector (minutes); after that a rebuild
#                 is seconds.
#
# Builds are serialized with an flock on $TMPDIR/detour-jaeger-build.lock,
# so two runs at once never write the scratch module or the binary at once;
# the second waits, then finds the stamp current. The binary is built
# beside OUTDIR's and renamed into place, so a running Jaeger is never
# overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.75.0
pkg=github.com/jaegertracing/jaeger/cmd/jaeger

die() { echo "jaeger.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 build OUTDIR" >&2
  exit 2
}

# stamp prints what the binary depends on: the toolchain and Jaeger's
# version (go.sum in the scratch module pins the rest).
stamp() {
  go version
  go env GOOS GOARCH CGO_ENABLED GOFLAGS
  echo "$pkg@$version"
}

build() {
  local out=$1 start=$SECONDS lock new mod
  command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH (Jaeger $version needs go 1.24 or newer)"
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  lock="${TMPDIR:-/tmp}/detour-jaeger-build.lock"
  exec {lockfd}>"$lock" || die "cannot open $lock"
  if ! flock -n "$lockfd"; then
    echo "jaeger.sh: waiting for another build (lock $lock)" >&2
    flock "$lockfd"
  fi
  new=$(stamp) || die "cannot run go"
  if [ -x "$out/jaeger" ] && [ "$(cat "$out/.jaeger.stamp" 2>/dev/null)" = "$new" ]; then
    echo "jaeger.sh: $out is up to date ($((SECONDS - start))s)" >&2
    return
  fi
  mod="$(dirname "$(go env GOCACHE)")/detour-jaeger"
  mkdir -p "$mod" || die "cannot create the scratch module $mod"
  echo "jaeger.sh: building jaeger $version into $out in $mod (the first on a machine compiles all of Jaeger: minutes)" >&2
  if [ ! -f "$mod/go.mod" ]; then
    (cd "$mod" && go mod init detour-jaeger-build >/dev/null 2>&1) || die "go mod init in $mod failed"
  fi
  if ! grep -q "^tool $pkg\$" "$mod/go.mod" || ! grep -q "jaegertracing/jaeger $version" "$mod/go.mod"; then
    # Its 300 "go: added" lines are shown only when it fails.
    if ! (cd "$mod" && go get -tool "$pkg@$version") >"$mod/get.log" 2>&1; then
      cat "$mod/get.log" >&2
      die "go get -tool $pkg@$version in $mod failed (no module proxy for a cold cache?)"
    fi
  fi
  local tmp
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  # GOFLAGS from the environment apply; the scratch module has no VCS.
  if ! (cd "$mod" && go build -buildvcs=false -o "$tmp/jaeger" "$pkg"); then
    rm -rf "$tmp"
    die "go build $pkg in $mod failed"
  fi
  mv -f "$tmp/jaeger" "$out/"
  rmdir "$tmp"
  printf '%s\n' "$new" >"$out/.jaeger.stamp"
  echo "jaeger.sh: built in $((SECONDS - start))s" >&2
}

[ $# -ge 1 ] || usage
case $1 in
  build)
    [ $# -eq 2 ] && [ -n "$2" ] || usage
    build "$2"
    ;;
  *) usage ;;
esac
