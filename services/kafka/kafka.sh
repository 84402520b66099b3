#!/usr/bin/env bash
# Start/stop a real single-node Apache Kafka broker (KRaft, broker+controller in
# one JVM) on 127.0.0.1, without Docker: the jars come from Maven Central via
# services/kafka/pom.xml and are cached outside the repo.
#
# Usage: services/kafka/kafka.sh up|down|status|env|reset
#   up      download jars once, format storage once, start the broker, wait until
#           it serves, print ESA_KAFKA_BOOTSTRAP=host:port on stdout (no-op if running)
#   down    stop it (SIGTERM, wait, SIGKILL); no-op if not running
#   status  exit 0 if running and answering, 1 otherwise
#   env     print "export ESA_KAFKA_BOOTSTRAP=host:port"
#   reset   down, then delete the broker's data (keeps the jar cache)
#
# Environment (all optional):
#   ESA_KAFKA_PORT           PLAINTEXT port (default 9092; the controller uses port+1)
#   ESA_KAFKA_PARTITIONS     num.partitions for auto-created topics (default 4)
#   ESA_KAFKA_HEAP           max heap (default 512m)
#   ESA_KAFKA_JAVA_OPTS      extra JVM options
#   ESA_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 120)
#   ESA_KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 30)
#   ESA_SERVICES_CACHE       jar cache root (default $HOME/.cache/esa-enricher)
#   ESA_SERVICES_STATE       state root (default <repo>/.services); data+logs in ./kafka
#   JAVA_HOME / ESA_KAFKA_JAVA  which java to use (Java 17+ required)
#   ESA_KAFKA_PROFILE        "default", or "secure": a second broker whose client listener
#                            is SASL_SSL (TLS + SASL/SCRAM-SHA-512), state in ./kafka-secure;
#                            inter-broker traffic stays on a loopback PLAINTEXT listener (port+2)
#   ESA_KAFKA_SECURE_DIR     (secure profile) holds server.pem (private key, PKCS#8, then the
#                            certificate chain; made by the caller) and scram-users (one
#                            `SCRAM-SHA-512=[name=USER,password=PASSWORD]` a line: the users
#                            the storage is formatted with)
#
# Only the ESA_KAFKA_BOOTSTRAP line goes to stdout; progress and errors go to
# stderr, so `eval "$(services/kafka/kafka.sh env)"` and
# `export "$(services/kafka/kafka.sh up)"` are safe.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")
HOST=127.0.0.1
PORT=${ESA_KAFKA_PORT:-9092}
CONTROLLER_PORT=$((PORT + 1))
PARTITIONS=${ESA_KAFKA_PARTITIONS:-4}
HEAP=${ESA_KAFKA_HEAP:-512m}
START_TIMEOUT=${ESA_KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${ESA_KAFKA_STOP_TIMEOUT:-30}

CACHE_DIR=${ESA_SERVICES_CACHE:-$HOME/.cache/esa-enricher}/kafka-$KAFKA_VERSION
LIBS=$CACHE_DIR/libs
PROFILE=${ESA_KAFKA_PROFILE:-default}
case $PROFILE in
  default) STATE=${ESA_SERVICES_STATE:-$REPO/.services}/kafka ;;
  secure) STATE=${ESA_SERVICES_STATE:-$REPO/.services}/kafka-secure ;;
  *)
    echo "kafka.sh: ERROR: unknown ESA_KAFKA_PROFILE=$PROFILE (default or secure)" >&2
    exit 2
    ;;
esac
DATA=$STATE/data
LOGS=$STATE/logs
CONFIG=$STATE/server.properties
LOG4J_CONFIG=$STATE/log4j2.xml
PID_FILE=$STATE/kafka.pid
SERVER_LOG=$LOGS/server.log
CONSOLE_LOG=$LOGS/console.log # JVM stdout/stderr (crashes, bad options)
FORMAT_LOG=$LOGS/format.log
# Ports the storage was formatted with: the controller endpoint is written
# into the KRaft metadata log by `format --standalone`.
FORMAT_STAMP=$STATE/formatted-with

BOOTSTRAP=$HOST:$PORT

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Print the end of a log file to stderr (used on failures).
show_tail() {
  if [ -s "$1" ]; then
    log "last lines of $1:"
    tail -n "${2:-30}" "$1" | sed 's/^/    /' >&2
  fi
}

port_open() { # host port
  # bash's /dev/tcp: no nc/curl needed. The subshell closes the fd again.
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

pid_from_file() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  printf '%s\n' "$pid"
}

# True if $1 is alive and is *our* broker (guards against a stale pid file
# whose pid was reused by another process after kill -9 or a reboot).
is_our_broker() {
  local pid=$1 cmd
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  else
    cmd=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  fi
  case $cmd in *kafka.Kafka*"$CONFIG"*) return 0 ;; esac
  return 1
}

running_pid() {
  local pid
  pid=$(pid_from_file) || return 1
  is_our_broker "$pid" || return 1
  printf '%s\n' "$pid"
}

find_java() {
  if [ -n "${ESA_KAFKA_JAVA:-}" ]; then
    JAVA=$ESA_KAFKA_JAVA
  elif [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    JAVA=$JAVA_HOME/bin/java
  else
    JAVA=$(command -v java) || die "java not found (Kafka $KAFKA_VERSION needs Java 17+); set JAVA_HOME or ESA_KAFKA_JAVA"
  fi
  local spec
  spec=$("$JAVA" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java.specification.version = //p') || true
  case $spec in
    '' ) die "could not run $JAVA to read its version" ;;
    1.* | 9 | 1[0-6]) die "$JAVA is Java $spec; Kafka $KAFKA_VERSION brokers need Java 17+ (set JAVA_HOME or ESA_KAFKA_JAVA)" ;;
  esac
}

# Download the broker's jars once into the cache. A marker file records a
# complete download; the copy goes to a temp dir first so that an interrupted
# download never leaves a half-filled libs/ that looks usable.
ensure_libs() {
  [ -f "$CACHE_DIR/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: it is needed once to fetch Kafka $KAFKA_VERSION jars into $LIBS"
  mkdir -p "$CACHE_DIR"
  local tmp=$CACHE_DIR/libs.tmp.$$ mvn_log=$CACHE_DIR/mvn.log
  rm -rf "$tmp"
  log "downloading Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (once)"
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" \
      dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    show_tail "$mvn_log"
    die "downloading the Kafka jars failed (full output: $mvn_log)"
  fi
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar missing after download (see $mvn_log)"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  touch "$CACHE_DIR/.complete"
}

# The secure profile's listeners, after the default ones (a later key wins in a properties file).
secure_listener_config() {
  [ "$PROFILE" = secure ] || return 0
  local d=$ESA_KAFKA_SECURE_DIR # checked by write_configs
  local internal=$((PORT + 2))
  cat <<SECURE
# secure profile: clients on SASL_SSL (TLS, SCRAM-SHA-512), the broker itself on loopback PLAINTEXT.
listeners=SASL_SSL://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT,INTERNAL://$HOST:$internal
advertised.listeners=SASL_SSL://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT,INTERNAL://$HOST:$internal
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$d/server.pem
SECURE
}

write_configs() {
  mkdir -p "$DATA" "$LOGS"
  if [ "$PROFILE" = secure ]; then
    local d=${ESA_KAFKA_SECURE_DIR:-}
    [ -n "$d" ] && [ -f "$d/server.pem" ] && [ -f "$d/scram-users" ] ||
      die "the secure profile needs ESA_KAFKA_SECURE_DIR with server.pem and scram-users"
  fi
  cat >"$CONFIG" <<EOF
# Generated by services/kafka/kafka.sh on every 'up'; edits are overwritten.
process.roles=broker,controller
node.id=1
# KIP-853 dynamic quorum: the single voter is written by 'format --standalone'.
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
$(secure_listener_config)

num.partitions=$PARTITIONS
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
# Internal topics: one broker, so replication factor 1 everywhere.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer __consumer_offsets partitions than the default 50: the first consumer
# group is coordinated sooner on a small machine.
offsets.topic.num.partitions=10
# Tests: no 3 s wait before the first rebalance of a new group.
group.initial.rebalance.delay.ms=0

# Small machine shared with Elasticsearch and tests.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF

  # Quiet logging: nothing on the console, INFO to a size-capped file.
  # (The readiness check greps this file for "Kafka Server started".)
  cat >"$LOG4J_CONFIG" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="$SERVER_LOG" filePattern="$LOGS/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="10 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Logger name="kafka.log" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

# Format the KRaft log dir once, with a fresh cluster id.
ensure_formatted() {
  local stamp="$HOST:$PORT,$HOST:$CONTROLLER_PORT"
  if [ -f "$DATA/meta.properties" ]; then
    if [ -f "$FORMAT_STAMP" ] && [ "$(cat "$FORMAT_STAMP")" != "$stamp" ]; then
      die "the data in $DATA was formatted for $(cat "$FORMAT_STAMP"), not $stamp; run '$0 reset' (deletes the data) or use the old ESA_KAFKA_PORT"
    fi
    return 0
  fi
  # Cluster id = 16 random bytes, URL-safe base64 without padding (Kafka's Uuid
  # format); avoid a leading '-' (it would look like an option).
  local id=-
  while [ "${id#-}" != "$id" ]; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
  done
  log "formatting $DATA (cluster id $id)"
  # (No log4j2 config here: log4j2's default, errors to the console, lands in $FORMAT_LOG.)
  # The secure profile's SCRAM users live in the metadata log: they are written by the format.
  local scram=() line
  if [ "$PROFILE" = secure ]; then
    while IFS= read -r line; do [ -n "$line" ] && scram+=(--add-scram "$line"); done <"$ESA_KAFKA_SECURE_DIR/scram-users"
  fi
  if ! "$JAVA" -Xmx256m -cp "$LIBS/*" \
      kafka.tools.StorageTool format --standalone --cluster-id "$id" \
      --config "$CONFIG" ${scram[@]+"${scram[@]}"} >"$FORMAT_LOG" 2>&1; then
    show_tail "$FORMAT_LOG"
    die "formatting the Kafka storage failed (see $FORMAT_LOG)"
  fi
  printf '%s\n' "$stamp" >"$FORMAT_STAMP"
}

# Wait until the broker process both listens and has logged that start-up
# finished (KafkaRaftServer logs "Kafka Server started" only after the broker
# has caught up with the metadata log and been unfenced, i.e. it can serve
# Metadata/Produce/Fetch requests).
wait_ready() {
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_tail "$CONSOLE_LOG" 20
      show_tail "$SERVER_LOG" 40
      die "the Kafka broker exited during start-up (logs: $SERVER_LOG, $CONSOLE_LOG)"
    fi
    if grep -q 'Kafka Server started' "$SERVER_LOG" 2>/dev/null && port_open "$HOST" "$PORT"; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_tail "$SERVER_LOG" 40
      die "the Kafka broker (pid $pid) was not ready after ${START_TIMEOUT}s; it is left running for inspection, stop it with '$0 down' (log: $SERVER_LOG)"
    fi
    sleep 0.25
  done
}

cmd_up() {
  mkdir -p "$STATE"
  # Serialize concurrent 'up's (e.g. parallel test workers) on one state dir.
  if command -v flock >/dev/null; then
    exec 9>"$STATE/.lock"
    flock -w "$((START_TIMEOUT + 300))" 9 || die "timed out waiting for another '$0 up' (lock $STATE/.lock)"
  fi

  local pid
  if pid=$(running_pid); then
    wait_ready "$pid" # may still be starting (another caller's 'up')
    echo "ESA_KAFKA_BOOTSTRAP=$BOOTSTRAP"
    return 0
  fi
  rm -f "$PID_FILE" # stale (kill -9, reboot) or absent

  local p
  for p in "$PORT" "$CONTROLLER_PORT" $([ "$PROFILE" = secure ] && echo $((PORT + 2))); do
    if port_open "$HOST" "$p"; then
      die "port $HOST:$p is already in use by another process; stop it or set ESA_KAFKA_PORT (the controller uses ESA_KAFKA_PORT+1)"
    fi
  done

  find_java
  ensure_libs
  write_configs
  ensure_formatted

  # One server.log per run, so the readiness grep cannot see an old run's line.
  [ -f "$SERVER_LOG" ] && mv -f "$SERVER_LOG" "$LOGS/server.log.prev"
  rm -f "$LOGS"/server.log.[0-9]*

  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (log: $SERVER_LOG)"
  # ESA_KAFKA_JAVA_OPTS is split into words on purpose (several options).
  # shellcheck disable=SC2086
  # 9>&-: the broker must not inherit the 'up' lock, or it would hold it forever.
  nohup "$JAVA" -Xms64m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
    ${ESA_KAFKA_JAVA_OPTS:-} -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    >"$CONSOLE_LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_ready "$pid"
  log "Kafka is up (pid $pid)"
  echo "ESA_KAFKA_BOOTSTRAP=$BOOTSTRAP"
}

cmd_down() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    log "Kafka is not running"
    return 0
  fi
  log "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "still running after ${STOP_TIMEOUT}s, sending SIGKILL (log: $SERVER_LOG)"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    die "could not stop Kafka (pid $pid)"
  fi
  rm -f "$PID_FILE"
  log "Kafka stopped"
}

cmd_status() {
  local pid
  if pid=$(running_pid) && port_open "$HOST" "$PORT"; then
    log "Kafka $KAFKA_VERSION is running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  log "Kafka is not running on $BOOTSTRAP"
  return 1
}

cmd_reset() {
  cmd_down
  log "deleting $DATA"
  rm -rf "$DATA" "$FORMAT_STAMP"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "export ESA_KAFKA_BOOTSTRAP=$BOOTSTRAP" ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 up|down|status|env|reset" >&2
    exit 2
    ;;
esac
