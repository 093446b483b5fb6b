#!/usr/bin/env bash
# zookeeper.sh start|stop|status DIR: a throwaway standalone ZooKeeper for
# tests, from Debian's `zookeeper` package (installed here if missing).
#
#   start DIR   write DIR/zoo.cfg, start the server in the background (log in
#               DIR/zookeeper.log, PID in DIR/zookeeper.pid), wait until it
#               answers `ruok` with `imok`, print DETOUR_ZK_ADDR=127.0.0.1:PORT.
#               Starting a DIR whose server is already running only prints
#               the address again.
#   stop DIR    stop that server by its PID and wait until it has exited.
#   status DIR  print DETOUR_ZK_ADDR if the server of DIR answers, else fail.
#
# Environment: ZK_PORT (client port, default 21810), ZK_START_TIMEOUT
# (seconds to wait for `imok`, default 60), JAVA (default: java on PATH).
#
# The server is tuned for tests: tickTime 500 ms and minSessionTimeout 1 s, so
# a client can ask for a 2 s session and see it expire quickly; no fsync; the
# admin HTTP server off; only the `ruok` and `srvr` four-letter words.
set -euo pipefail

ZK_PORT=${ZK_PORT:-21810}
ZK_START_TIMEOUT=${ZK_START_TIMEOUT:-60}
MAIN=org.apache.zookeeper.server.quorum.QuorumPeerMain
JARDIR=/usr/share/java

die() { echo "zookeeper.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}

# install_if_missing installs Debian's zookeeper package (which brings a JRE)
# when the server jar or java is not there.
install_if_missing() {
  if [ -f "$JARDIR/zookeeper.jar" ] && command -v "${JAVA:-java}" >/dev/null 2>&1; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "Debian's zookeeper package is missing; run as root so this script can install it (apt-get install zookeeper)"
  command -v apt-get >/dev/null 2>&1 || die "zookeeper is not installed and there is no apt-get to install it"
  echo "zookeeper.sh: installing Debian's zookeeper package" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends zookeeper >&2
  [ -f "$JARDIR/zookeeper.jar" ] || die "installed zookeeper but $JARDIR/zookeeper.jar is missing"
}

# classpath: zookeeper.jar names its own dependencies (jute, netty, slf4j-api,
# ...) in its manifest's Class-Path; the log4j 1.2 binding for slf4j comes
# from libslf4j-java and liblog4j1.2-java, both dependencies of the package.
classpath() {
  local cp="$JARDIR/zookeeper.jar" jar
  for jar in slf4j-log4j12.jar log4j-1.2.jar; do
    [ -f "$JARDIR/$jar" ] && cp="$cp:$JARDIR/$jar"
  done
  echo "$cp"
}

# ruok PORT prints what the server on 127.0.0.1:PORT answers to `ruok`
# (nothing if no server), using bash's /dev/tcp: no nc needed.
ruok() {
  local port=$1
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
    printf ruok >&3
    timeout 2 cat <&3 || true
  ) 2>/dev/null || true
}

# listening PORT succeeds when something accepts connections on 127.0.0.1:PORT.
listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ours PID DIR succeeds when PID is a live ZooKeeper started with DIR/zoo.cfg.
ours() {
  local pid=$1 dir=$2 cmd
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$MAIN"* && $cmd == *"$dir/zoo.cfg"* ]]
}

cfg_port() {
  sed -n 's/^clientPort=//p' "$1/zoo.cfg" 2>/dev/null | tail -n1
}

log_tail() {
  echo "--- last lines of $1/zookeeper.log ---" >&2
  tail -n 40 "$1/zookeeper.log" >&2 2>/dev/null || true
  echo "---" >&2
}

# wait_imok DIR PID PORT waits until the server answers imok; it fails,
# printing the log's tail, when the server exits or ZK_START_TIMEOUT passes.
wait_imok() {
  local dir=$1 pid=$2 port=$3 deadline=$((SECONDS + ZK_START_TIMEOUT))
  while [ "$(ruok "$port")" != imok ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$dir/zookeeper.pid"
      log_tail "$dir"
      die "ZooKeeper (pid $pid) exited during start-up"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail "$dir"
      die "ZooKeeper (pid $pid) did not answer imok on 127.0.0.1:$port within ${ZK_START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

start() {
  local dir=$1 pid port
  if [ -f "$dir/zookeeper.pid" ]; then
    pid=$(cat "$dir/zookeeper.pid")
    if ours "$pid" "$dir"; then
      port=$(cfg_port "$dir")
      wait_imok "$dir" "$pid" "$port" # it may still be starting
      echo "zookeeper.sh: already running from $dir (pid $pid)" >&2
      echo "DETOUR_ZK_ADDR=127.0.0.1:$port"
      return
    fi
    rm -f "$dir/zookeeper.pid" # stale
  fi

  case $ZK_PORT in
    '' | *[!0-9]*) die "ZK_PORT=$ZK_PORT: not a port number" ;;
  esac
  if listening "$ZK_PORT"; then
    die "port $ZK_PORT on 127.0.0.1 is already taken by another process; set ZK_PORT to a free port"
  fi

  install_if_missing
  local java=${JAVA:-java}
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
# Written by scripts/zookeeper.sh: a standalone server for tests.
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
minSessionTimeout=1000
maxSessionTimeout=60000
maxClientCnxns=0
forceSync=no
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
EOF
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] %m%n
EOF

  # setsid: the server outlives this script and the caller's process group.
  # Every standard stream is redirected so a caller reading our stdout
  # through a pipe ($(...)) is not held open by the server.
  setsid "$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dzookeeper.admin.enableServer=false \
    "-Dlog4j.configuration=file:$dir/log4j.properties" \
    -cp "$(classpath)" "$MAIN" "$dir/zoo.cfg" \
    >"$dir/zookeeper.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/zookeeper.pid"
  if ! (wait_imok "$dir" "$pid" "$ZK_PORT"); then
    stop "$dir" >/dev/null 2>&1 || true
    exit 1
  fi
  echo "zookeeper.sh: started from $dir (pid $pid, log $dir/zookeeper.log)" >&2
  echo "DETOUR_ZK_ADDR=127.0.0.1:$ZK_PORT"
}

stop() {
  local dir=$1 pid i
  if [ ! -f "$dir/zookeeper.pid" ]; then
    echo "zookeeper.sh: nothing running from $dir" >&2
    return
  fi
  pid=$(cat "$dir/zookeeper.pid")
  if ! ours "$pid" "$dir"; then
    echo "zookeeper.sh: pid $pid from $dir is not running (stale pid file removed)" >&2
    rm -f "$dir/zookeeper.pid"
    return
  fi
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do # 20 s for a clean exit
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "zookeeper.sh: pid $pid did not exit after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$dir/zookeeper.pid"
  echo "zookeeper.sh: stopped pid $pid" >&2
}

status() {
  local dir=$1 pid port
  pid=$(cat "$dir/zookeeper.pid" 2>/dev/null) || die "nothing running from $dir"
  ours "$pid" "$dir" || die "pid $pid from $dir is not running"
  port=$(cfg_port "$dir")
  [ "$(ruok "$port")" = imok ] || die "pid $pid runs but does not answer imok on port $port"
  echo "DETOUR_ZK_ADDR=127.0.0.1:$port"
}

[ $# -eq 2 ] || usage
cmd=$1
[ -n "$2" ] || usage
if [ "$cmd" = start ]; then
  mkdir -p "$2"
elif [ ! -d "$2" ]; then
  echo "zookeeper.sh: $2 does not exist: nothing running from it" >&2
  [ "$cmd" = stop ] && exit 0
  exit 1
fi
dir=$(cd "$2" && pwd)

case $cmd in
  start) start "$dir" ;;
  stop) stop "$dir" ;;
  status) status "$dir" ;;
  *) usage ;;
esac
