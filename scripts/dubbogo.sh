#!/usr/bin/env bash
# dubbogo.sh build OUTDIR | test [GO TEST FLAGS...]: the real dubbo-go
# v3.3.1 test apps of integration/dubbogo (a Go module of its own, so
# dubbo-go's dependencies stay out of detour's go.mod).
#
#   build OUTDIR  build dubbo-provider and dubbo-consumer into OUTDIR with
#                 the default (warm) module and build caches, printing how
#                 long it took. Quick when nothing changed: OUTDIR keeps a
#                 stamp of the sources and the toolchain, and an unchanged
#                 stamp skips the build. The first build on a machine
#                 downloads and compiles all of dubbo-go (78 s measured on
#                 2 idle cores, several minutes on a loaded machine); after
#                 that a rebuild is seconds.
#   test [FLAGS]  build into bin/dubbogo, then `go test FLAGS ./...` in the
#                 module with DUBBOGO_BIN set to it (default flags:
#                 -count=1). Needs DETOUR_ZK_ADDR (scripts/with-servers.sh);
#                 without it the test skips, or fails when CI=true.
#
# Builds are serialized with an flock on $TMPDIR/detour-dubbogo-build.lock,
# so two runs at once (two `make test`, a test beside a demo) never write
# the same binary at once; the second waits, then finds the stamp current.
# Binaries are built beside OUTDIR's and renamed into place, so a running
# app is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=integration/dubbogo

die() { echo "dubbogo.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 build OUTDIR | test [GO TEST FLAGS...]" >&2
  exit 2
}

# stamp prints what the binaries depend on: the toolchain and every file
# of the module that goes into them (go.mod, go.sum, the non-test .go files).
stamp() {
  go version
  go env GOOS GOARCH CGO_ENABLED GOFLAGS
  (cd "$mod" && find . -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum && sha256sum go.mod go.sum)
}

build() {
  local out=$1 start=$SECONDS lock new
  command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH (need the go version named in $mod/go.mod)"
  [ -f "$mod/go.mod" ] || die "$mod/go.mod is missing"
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  lock="${TMPDIR:-/tmp}/detour-dubbogo-build.lock"
  exec {lockfd}>"$lock" || die "cannot open $lock"
  if ! flock -n "$lockfd"; then
    echo "dubbogo.sh: waiting for another build (lock $lock)" >&2
    flock "$lockfd"
  fi
  new=$(stamp) || die "cannot read the sources of $mod"
  if [ -x "$out/dubbo-provider" ] && [ -x "$out/dubbo-consumer" ] &&
    [ "$(cat "$out/.dubbogo.stamp" 2>/dev/null)" = "$new" ]; then
    echo "dubbogo.sh: $out is up to date ($((SECONDS - start))s)" >&2
    return
  fi
  echo "dubbogo.sh: building dubbo-provider and dubbo-consumer into $out (the first on a machine compiles all of dubbo-go: a minute or more)" >&2
  local tmp
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  # GOFLAGS from the environment apply; -buildvcs=false because the
  # module's VCS stamp is detour's and says nothing about the apps.
  if ! (cd "$mod" && go build -buildvcs=false -o "$tmp/" ./cmd/dubbo-provider ./cmd/dubbo-consumer); then
    rm -rf "$tmp"
    die "go build in $mod failed (a toolchain older than $mod/go.mod asks, or no module proxy for a cold cache?)"
  fi
  mv -f "$tmp/dubbo-provider" "$tmp/dubbo-consumer" "$out/"
  rmdir "$tmp"
  printf '%s\n' "$new" >"$out/.dubbogo.stamp"
  echo "dubbogo.sh: built in $((SECONDS - start))s" >&2
}

[ $# -ge 1 ] || usage
case $1 in
  build)
    [ $# -eq 2 ] && [ -n "$2" ] || usage
    build "$2"
    ;;
  test)
    shift
    build bin/dubbogo
    [ $# -gt 0 ] || set -- -count=1
    bin=$(pwd)/bin/dubbogo
    cd "$mod"
    DUBBOGO_BIN=$bin go test "$@" ./...
    ;;
  *) usage ;;
esac
