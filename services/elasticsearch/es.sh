#!/usr/bin/env bash
# Single-node Elasticsearch for the esa-enricher lab, without Docker.
#
#   services/elasticsearch/es.sh up      build once (cached), start in the background, wait for yellow health
#   services/elasticsearch/es.sh down    stop (SIGTERM, wait, SIGKILL); no-op when not running
#   services/elasticsearch/es.sh status  print state; exit 0 when running, 3 when not
#   services/elasticsearch/es.sh env     print the ESA_ES_URL line
#   services/elasticsearch/es.sh reset   stop and wipe the node's data (the build cache stays)
#   services/elasticsearch/es.sh build   only assemble the cached distribution
#
# `up`, `status` and `env` print `ESA_ES_URL=http://127.0.0.1:<port>` on stdout (everything else goes to stderr),
# so `eval "$(services/elasticsearch/es.sh up)"` works.
#
# The node is a real Elasticsearch (Elastic's server jar and transport-netty4 module from Maven Central) started by
# this project's launcher (src/main/java/.../launcher/EsLauncher.java); see README.md next to this script.
#
# Environment:
#   ESA_ES_PORT            HTTP port (default 9200)
#   ESA_ES_TRANSPORT_PORT  transport port or range (default 9300-9399)
#   ESA_ES_HEAP            JVM heap (default: -Xms512m -Xmx1g)
#   ESA_ES_START_TIMEOUT   seconds to wait for health in `up` (default 180)
#   ESA_ES_JAVA_HOME       JDK (21+) to use; otherwise JAVA_HOME if 21+, else the newest 21+ JDK under /usr/lib/jvm
#   ESA_ES_MAVEN_ARGS      extra Maven arguments for the one-time build (e.g. -Dmaven.repo.local=...)
#   ESA_SERVICES_CACHE     build cache root (default $HOME/.cache/esa-enricher)
#   ESA_SERVICES_STATE     state root (default <repo>/.services)
#   ESA_ES_PROFILE         "default", or "secure": a second node with x-pack security (TLS on HTTP, file + native
#                          realms, API keys) in its own state dir (elasticsearch-secure/); see README.md. It needs
#   ESA_ES_SECURE_DIR      (secure profile) a directory with ca.pem, node.pem, node.key (the HTTP certificate, made by
#                          the caller), users + users_roles (file realm: the bootstrap superuser) and health.curlrc
#                          (curl config with `user = "name:password"`, used for the readiness check)
set -euo pipefail

ES_VERSION=9.5.3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PORT="${ESA_ES_PORT:-9200}"
TRANSPORT_PORT="${ESA_ES_TRANSPORT_PORT:-9300-9399}"
CACHE_ROOT="${ESA_SERVICES_CACHE:-$HOME/.cache/esa-enricher}"
DIST="$CACHE_ROOT/elasticsearch-$ES_VERSION"
STATE="${ESA_SERVICES_STATE:-$REPO/.services}/elasticsearch"
PID_FILE="$STATE/es.pid"
LOG_FILE="$STATE/logs/es.log"
URL="http://127.0.0.1:$PORT"
MAIN_CLASS=esa.services.elasticsearch.launcher.EsLauncher
PROFILE="${ESA_ES_PROFILE:-default}"
ES_HOME="$DIST"  # es.path.home: modules/ and lib/
HEALTH_OPTS=()   # extra curl options of the readiness check
if [ "$PROFILE" = secure ]; then
  ES_HOME="$DIST-secure"
  STATE="${ESA_SERVICES_STATE:-$REPO/.services}/elasticsearch-secure"
  PID_FILE="$STATE/es.pid"
  LOG_FILE="$STATE/logs/es.log"
  URL="https://127.0.0.1:$PORT"
  HEALTH_OPTS=(--cacert "$STATE/config/certs/ca.pem" -K "$STATE/config/health.curlrc")
elif [ "$PROFILE" != default ]; then
  echo "es.sh: ERROR: unknown ESA_ES_PROFILE=$PROFILE (default or secure)" >&2; exit 2
fi

say() { echo "es.sh: $*" >&2; }
die() { echo "es.sh: ERROR: $*" >&2; exit 1; }

java_major() { # $1 = java binary -> prints the feature version (e.g. 21), or nothing
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -1
}

find_java_home() {
  local c m
  # shellcheck disable=SC2012
  for c in "${ESA_ES_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
    c="${c%/}"
    if [ -z "$c" ] || [ ! -x "$c/bin/java" ] || [ ! -x "$c/bin/javac" ]; then continue; fi
    m="$(java_major "$c/bin/java")"
    if [ -n "$m" ] && [ "$m" -ge 21 ]; then echo "$c"; return 0; fi
  done
  return 1
}

http_ok() { # $1 = url -> success when the answer is 2xx
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 30 ${HEALTH_OPTS[@]+"${HEALTH_OPTS[@]}"} "$1" 2>/dev/null
  else
    python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=30).read()
EOF
  fi
}

# A stamp of everything the build depends on: rebuild when the launcher or pom change.
build_stamp() {
  (cd "$HERE" && { cat pom.xml; find src -type f -print0 | LC_ALL=C sort -z | xargs -0 cat; } | sha256sum | cut -d' ' -f1)
}

ensure_built() {
  local stamp; stamp="$(build_stamp)"
  if [ -f "$DIST/.esa-build-stamp" ] && [ "$(cat "$DIST/.esa-build-stamp")" = "$stamp" ]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3) is needed to assemble Elasticsearch from Maven Central"
  local jh; jh="$(find_java_home)" || die "no JDK 21+ found (set ESA_ES_JAVA_HOME); Elasticsearch $ES_VERSION needs Java 21+"
  mkdir -p "$CACHE_ROOT"
  local tmp="$DIST.tmp.$$"
  rm -rf "$tmp"
  say "assembling Elasticsearch $ES_VERSION from Maven Central into $DIST (one time) ..."
  local blog="$CACHE_ROOT/elasticsearch-$ES_VERSION.build.log"
  # shellcheck disable=SC2086 # ESA_ES_MAVEN_ARGS is a list of arguments
  if ! JAVA_HOME="$jh" mvn -B ${ESA_ES_MAVEN_ARGS:-} -f "$HERE/pom.xml" -Des.version="$ES_VERSION" -Des.dist.dir="$tmp" package >"$blog" 2>&1; then
    rm -rf "$tmp"
    tail -n 30 "$blog" >&2 || true
    die "Maven build failed; full log: $blog"
  fi
  rm -rf "$tmp/build"
  # Elasticsearch's native access looks for its libraries under lib/platform/<os-arch>/. The distribution bundles
  # libzstd (needed by the best_compression codec) and libvec (SIMD vector scoring, Elastic-built, not on Maven
  # Central). Here the system's libzstd (Debian package libzstd1) is linked in, and the vector library is switched
  # off with -Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false (see cmd_up); without libzstd, indices with
  # index.codec=best_compression fail to allocate (zstd is null).
  local z
  for z in /usr/lib/x86_64-linux-gnu/libzstd.so.1 /usr/lib/aarch64-linux-gnu/libzstd.so.1 /usr/lib64/libzstd.so.1 /usr/lib/libzstd.so.1; do
    if [ -e "$z" ]; then
      local plat=linux-x64; case "$(uname -m)" in aarch64|arm64) plat=linux-aarch64 ;; esac
      mkdir -p "$tmp/lib/platform/$plat" && ln -sf "$z" "$tmp/lib/platform/$plat/libzstd.so"
      break
    fi
  done
  echo "$stamp" >"$tmp/.esa-build-stamp"
  rm -rf "$DIST"
  mv "$tmp" "$DIST"
  say "assembled $DIST"
}

# The secure profile's home: the default build plus x-pack-core and x-pack-security (security/assemble.sh).
ensure_secure_built() {
  local stamp
  stamp="$(build_stamp)-$(cd "$HERE/security" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)"
  if [ -f "$ES_HOME/.esa-build-stamp" ] && [ "$(cat "$ES_HOME/.esa-build-stamp")" = "$stamp" ]; then
    return 0
  fi
  command -v curl >/dev/null 2>&1 || die "the secure profile needs curl (readiness check over TLS with credentials)"
  local jh; jh="$(find_java_home)" || die "no JDK 21+ found (set ESA_ES_JAVA_HOME)"
  say "assembling the secure profile (x-pack-core, x-pack-security from Maven Central) into $ES_HOME (one time) ..."
  "$HERE/security/assemble.sh" "$DIST" "$ES_HOME" "$jh" || die "assembling the secure profile failed"
  echo "$stamp" >"$ES_HOME/.esa-build-stamp"
}

# pid of our running node, or nothing (removes a stale pid file)
running_pid() {
  [ -f "$PID_FILE" ] || return 0
  local pid; pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  local cmdline=""
  [ -n "$pid" ] && cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" == *"-Des.path.conf=$STATE/config "* && "$cmdline" == *"$MAIN_CLASS"* ]]; then
    echo "$pid"
  else
    rm -f "$PID_FILE"
  fi
}

port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
  mkdir -p "$STATE/config" "$STATE/data" "$STATE/logs" "$STATE/tmp"
  cat >"$STATE/config/elasticsearch.yml" <<EOF
# Generated by services/elasticsearch/es.sh on each 'up'; edits are overwritten.
cluster.name: esa-lab
node.name: esa-lab-node
path.data: $STATE/data
path.logs: $STATE/logs
network.host: 127.0.0.1
http.port: $PORT
transport.port: $TRANSPORT_PORT
discovery.type: single-node
# lab conveniences: no read-only flood stage on a full CI disk; wildcard deletes allowed
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  if [ "$PROFILE" = secure ]; then
    local d="${ESA_ES_SECURE_DIR:-}" f
    [ -n "$d" ] || die "the secure profile needs ESA_ES_SECURE_DIR (certificates, users, health.curlrc)"
    mkdir -p "$STATE/config/certs"
    for f in ca.pem node.pem node.key; do cp "$d/$f" "$STATE/config/certs/$f" || die "missing $d/$f"; done
    for f in users users_roles health.curlrc; do cp "$d/$f" "$STATE/config/$f" || die "missing $d/$f"; done
    chmod 600 "$STATE/config/users" "$STATE/config/health.curlrc" "$STATE/config/certs/node.key"
    cat >>"$STATE/config/elasticsearch.yml" <<SECURE
# secure profile: TLS on HTTP (certificate from ESA_ES_SECURE_DIR), the file realm holds the bootstrap superuser,
# the native realm the users created through the security API; API keys are on (the default).
xpack.security.enabled: true
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.certificate: certs/node.pem
xpack.security.http.ssl.key: certs/node.key
xpack.security.http.ssl.certificate_authorities: [certs/ca.pem]
xpack.security.authc.realms.file.file1.order: 0
xpack.security.authc.realms.native.native1.order: 1
SECURE
  fi
  cat >"$STATE/config/log4j2.properties" <<'EOF'
# Generated by services/elasticsearch/es.sh; everything goes to stdout, which es.sh appends to logs/es.log.
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
EOF
}

cmd_up() {
  local pid; pid="$(running_pid)"
  if [ -n "$pid" ]; then
    say "already running (pid $pid)"
    echo "ESA_ES_URL=$URL"
    return 0
  fi
  ensure_built
  if [ "$PROFILE" = secure ]; then ensure_secure_built; fi
  local jh; jh="$(find_java_home)" || die "no JDK 21+ found (set ESA_ES_JAVA_HOME)"
  if port_busy "$PORT"; then
    die "port $PORT on 127.0.0.1 is already in use by another process (set ESA_ES_PORT)"
  fi
  write_config
  # shellcheck disable=SC2206 # ESA_ES_HEAP is a list of JVM flags
  local heap=(${ESA_ES_HEAP:--Xms512m -Xmx1g})
  # shellcheck disable=SC2054 # the commas belong to --enable-native-access
  local jvm=(
    "${heap[@]}" -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow "-XX:ErrorFile=$STATE/logs/hs_err_pid%p.log"
    -Dfile.encoding=UTF-8 -Djava.locale.providers=CLDR -Des.networkaddress.cache.ttl=60
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0
    -Des.distribution.type=tar "-Djava.io.tmpdir=$STATE/tmp"
    --add-modules=jdk.incubator.vector --enable-native-access=org.elasticsearch.nativeaccess,org.elasticsearch.foreign,org.apache.lucene.core
    -Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false
    "-Des.path.home=$ES_HOME" "-Des.path.conf=$STATE/config"
    --module-path "$DIST/lib" --add-modules=ALL-MODULE-PATH
    -cp "$DIST/launcher/esa-es-launcher.jar" "$MAIN_CLASS"
  )
  if [ "$PROFILE" = secure ]; then
    # The OpenSAML stand-ins (security/opensaml_stubs.py) are empty types: Elasticsearch's classes that name them
    # load only without remote bytecode verification (none of them runs: no SAML realm is configured).
    jvm=(-XX:+UnlockDiagnosticVMOptions -XX:-BytecodeVerificationRemote "${jvm[@]}")
  fi
  echo "=== es.sh up $(date -u +%FT%TZ) java=$jh profile=$PROFILE" >>"$LOG_FILE"
  setsid nohup "$jh/bin/java" "${jvm[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  say "starting Elasticsearch $ES_VERSION (pid $pid), log: $LOG_FILE"
  local deadline=$(( $(date +%s) + ${ESA_ES_START_TIMEOUT:-180} ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -n 40 "$LOG_FILE" >&2 || true
      die "Elasticsearch exited during start-up; see $LOG_FILE"
    fi
    if http_ok "$URL/_cluster/health?wait_for_status=yellow&timeout=1s"; then
      break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "Elasticsearch (pid $pid) not healthy after ${ESA_ES_START_TIMEOUT:-180}s; see $LOG_FILE (still running: 'es.sh down' to stop)"
    fi
    sleep 1
  done
  say "up: $URL"
  echo "ESA_ES_URL=$URL"
}

cmd_down() {
  local pid; pid="$(running_pid)"
  if [ -z "$pid" ]; then
    say "not running"
    return 0
  fi
  say "stopping pid $pid ..."
  kill -TERM "$pid" 2>/dev/null || true
  local _
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  rm -f "$PID_FILE"
  say "stopped"
}

cmd_status() {
  local pid; pid="$(running_pid)"
  if [ -z "$pid" ]; then
    say "stopped"
    return 3
  fi
  if http_ok "$URL/_cluster/health?wait_for_status=yellow&timeout=1s"; then
    say "running (pid $pid), healthy, log: $LOG_FILE"
  else
    say "running (pid $pid) but not (yet) answering health on $URL, log: $LOG_FILE"
  fi
  echo "ESA_ES_URL=$URL"
}

cmd_reset() { # stop and delete the node's data (indices, templates, cluster state); the build cache stays
  cmd_down
  rm -rf "$STATE/data" "$STATE/tmp"
  say "data wiped: $STATE/data"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "ESA_ES_URL=$URL" ;;
  reset) cmd_reset ;;
  build) ensure_built; say "built: $DIST" ;;
  *) echo "usage: $0 {up|down|status|env|reset|build}" >&2; exit 2 ;;
esac
