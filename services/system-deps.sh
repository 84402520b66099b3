#!/usr/bin/env bash
# System packages the tests need, installed with apt-get only when missing (idempotent, quick when all is there):
# Maven (fetches the Kafka and Elasticsearch jars once), a JDK 21+ (Elasticsearch 9), curl, libzstd, python3-venv,
# rsyslog + omkafka, logger, openssl, unzip, libmagic. Sourced by .ci/run (which then uses $JDK); run by `make test`.
set -euo pipefail
say() { printf 'deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { say "ERROR: need $* but apt-get is not available"; exit 1; }
  if [ "$APT_UPDATED" = 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -1; }
find_jdk21() { # a JDK (java + javac) of version 21 or newer, the way es.sh looks for one
  local c m
  # shellcheck disable=SC2012
  for c in "${ESA_ES_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
    c="${c%/}"
    [ -n "$c" ] && [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] || continue
    m="$(java_major "$c/bin/java")"
    if [ -n "$m" ] && [ "$m" -ge 21 ]; then echo "$c"; return 0; fi
  done
  return 1
}

# -- 1. system dependencies ------------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' ||
  { say "ERROR: $PYTHON is older than 3.11"; exit 1; }
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  apt_install python3-venv
fi
command -v mvn >/dev/null || apt_install maven
command -v curl >/dev/null || apt_install curl
# The rsyslog omkafka collector test runs a real rsyslogd; logger sends to it; openssl makes the TLS test certs.
{ command -v rsyslogd >/dev/null && dpkg -s rsyslog-kafka >/dev/null 2>&1; } || apt_install rsyslog rsyslog-kafka
command -v logger >/dev/null || apt_install bsdutils
command -v openssl >/dev/null || apt_install openssl
# services/compose/lab-init.sh unpacks elasticsearch-certutil's zips (tests/unit/test_lab_init.py runs it).
command -v unzip >/dev/null || apt_install unzip
ldconfig -p 2>/dev/null | grep -q 'libzstd\.so\.1' || apt_install libzstd1
# splunk-appinspect (the Splunk add-on test) identifies files with libmagic through python-magic.
ldconfig -p 2>/dev/null | grep -q 'libmagic\.so\.1' || apt_install libmagic1
if ! JDK=$(find_jdk21); then
  apt_install openjdk-21-jdk-headless || apt_install openjdk-25-jdk-headless
  JDK=$(find_jdk21) || { say "ERROR: no JDK 21+ after installing one"; exit 1; }
fi
export JAVA_HOME="$JDK" ESA_ES_JAVA_HOME="$JDK"
say "JDK: $JDK ($(java_major "$JDK/bin/java")), $(mvn -v 2>/dev/null | head -1)"

