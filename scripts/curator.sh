#!/usr/bin/env bash
# curator.sh deps | build OUTDIR | run OUTDIR HOST:PORT ROOT: the Curator
# program of integration/curator, which does with ZooKeeper what Java Dubbo
# 3 does through Apache Curator (Dubbo's ZooKeeper registry, config center
# caches, x-discovery service discovery, a dropped connection), one line
# per step. Curator comes from Debian's packages (Maven Central is not
# needed).
#
#   deps          install what is missing: a JDK (javac) and Debian's
#                 Curator packages (which bring ZooKeeper's client, guava,
#                 jackson, slf4j). Needs root and apt-get when something is
#                 missing; does nothing otherwise.
#   build OUTDIR  deps, then compile into OUTDIR/classes and write the
#                 launcher OUTDIR/curator-dubbo (HOST:PORT ROOT [restart]:
#                 see integration/curator/README.md). Quick when
#                 nothing changed: OUTDIR keeps a stamp of the sources, javac
#                 and the jars, and an unchanged stamp skips the build.
#                 Builds are serialized with an flock on
#                 $TMPDIR/detour-curator-build.lock.
#   run OUTDIR HOST:PORT ROOT   build, then run the program against the
#                 server at HOST:PORT under the znode ROOT (removed at the
#                 end). Exit 0 when every step passed.
#
# The Go tests of naming-agent/frontend/zookeeper/curator_test.go run it
# against the real ZooKeeper and the agent's front end and compare the
# transcripts; it uses CURATOR_BIN=OUTDIR when set (make test sets it),
# else builds into a directory of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
src=integration/curator/src
JARDIR=/usr/share/java
PKGS=(libcurator-client-java libcurator-framework-java libcurator-recipes-java libcurator-discovery-java)
# The jars on the classpath; their manifests name the rest (zookeeper-jute,
# guava, slf4j-api, jackson-*).
JARS=(curator-framework curator-recipes curator-x-discovery curator-client zookeeper jackson-databind
  jackson-core jackson-annotations slf4j-api)

die() { echo "curator.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 deps | build OUTDIR | run OUTDIR HOST:PORT ROOT" >&2
  exit 2
}

missing() {
  local jar
  command -v javac >/dev/null 2>&1 || echo default-jdk-headless
  for jar in "${JARS[@]}"; do
    [ -f "$JARDIR/$jar.jar" ] || { echo "${PKGS[@]}"; return; }
  done
  [ -f "$JARDIR/slf4j-simple.jar" ] || echo libslf4j-java
}

deps() {
  local need
  need=$(missing)
  [ -n "$need" ] || return 0
  [ "$(id -u)" = 0 ] || die "missing: $need; run as root so this script can install them (apt-get install $need)"
  command -v apt-get >/dev/null 2>&1 || die "missing: $need, and there is no apt-get to install them"
  echo "curator.sh: installing $need" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update >&2
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need >&2
  need=$(missing)
  [ -z "$need" ] || die "installed, but still missing: $need"
}

classpath() {
  local cp="" jar
  for jar in "${JARS[@]}" slf4j-simple; do
    cp="$cp:$JARDIR/$jar.jar"
  done
  echo "${cp#:}"
}

# stamp prints what the classes depend on: javac, the jars, the sources.
stamp() {
  javac -version 2>&1
  (cd "$JARDIR" && for jar in "${JARS[@]}"; do readlink -f "$jar.jar"; done)
  (cd "$src" && find . -name '*.java' -print0 | sort -z | xargs -0 sha256sum)
}

build() {
  local out=$1 start=$SECONDS lock new tmp
  deps
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  lock="${TMPDIR:-/tmp}/detour-curator-build.lock"
  exec {lockfd}>"$lock" || die "cannot open $lock"
  if ! flock -n "$lockfd"; then
    echo "curator.sh: waiting for another build (lock $lock)" >&2
    flock "$lockfd"
  fi
  new=$(stamp) || die "cannot read the sources in $src"
  if [ -x "$out/curator-dubbo" ] && [ "$(cat "$out/.curator.stamp" 2>/dev/null)" = "$new" ]; then
    echo "curator.sh: $out is up to date ($((SECONDS - start))s)" >&2
    return
  fi
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  # -Xlint:-path: the jars' manifests name optional jars Debian leaves out.
  if ! javac -Xlint:all,-path -Werror -d "$tmp/classes" -cp "$(classpath)" $(find "$src" -name '*.java' | sort); then
    rm -rf "$tmp"
    die "javac failed"
  fi
  cat >"$tmp/curator-dubbo" <<EOF
#!/bin/sh
# Written by scripts/curator.sh: the Curator program, HOST:PORT ROOT [restart].
exec java -Xshare:auto -XX:TieredStopAtLevel=1 -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \\
  -cp "$out/classes:$(classpath)" curatordubbo.Main "\$@"
EOF
  chmod +x "$tmp/curator-dubbo"
  rm -rf "$out/classes"
  mv "$tmp/classes" "$out/classes"
  mv -f "$tmp/curator-dubbo" "$out/curator-dubbo"
  rmdir "$tmp"
  printf '%s\n' "$new" >"$out/.curator.stamp"
  echo "curator.sh: built in $((SECONDS - start))s" >&2
}

[ $# -ge 1 ] || usage
case $1 in
  deps)
    [ $# -eq 1 ] || usage
    deps
    ;;
  build)
    [ $# -eq 2 ] && [ -n "$2" ] || usage
    build "$2"
    ;;
  run)
    [ $# -eq 4 ] || usage
    build "$2"
    exec "$2/curator-dubbo" "$3" "$4"
    ;;
  *) usage ;;
esac
