#!/usr/bin/env bash
# The secured docker-compose lab's one-shot steps and wrappers (docker-compose.yml runs them; docs/lab.md).
# Every secret is generated on the first start into the `lab-secrets` volume, never written in the repository:
#
#   lab-init.sh secrets     passwords and Kibana's encryption keys, one copy per container user (mode 600)
#   lab-init.sh certs       a CA and the Elasticsearch HTTP certificate (elasticsearch-certutil, PEM)
#   lab-init.sh users       sets the kibana_system password (Elasticsearch security API, as `elastic`)
#   lab-init.sh detections  imports the Elastic Security rules into Kibana (detection engine import API): the
#                           query rules and the threshold correlations, or with ESA_LAB_DETECTIONS=esql the
#                           query rules and the ES|QL correlations (all six; they need a trial licence,
#                           which this step starts)
#   lab-init.sh kibana      starts Kibana with its password and encryption keys read from the volume
#   lab-init.sh enricher ARGS...   runs `esa-enricher ARGS` with the Kibana credentials (for `setup --kibana`)
#
# Steps run in the order given; each is idempotent (an existing secret or certificate is kept).
# Environment: LAB_DIR (the volume, default /run/lab), ESA_LAB_ELASTIC_PASSWORD (choose the `elastic` password
# on the first start instead of a generated one), ESA_LAB_DETECTIONS (threshold | esql), LAB_ES_URL,
# LAB_KIBANA_URL, LAB_RULES_DIR (pipelines/sigma/out).
set -euo pipefail

LAB_DIR=${LAB_DIR:-/run/lab}
LAB_ES_URL=${LAB_ES_URL:-https://elasticsearch:9200}
LAB_KIBANA_URL=${LAB_KIBANA_URL:-http://kibana:5601}
LAB_RULES_DIR=${LAB_RULES_DIR:-/lab/rules}
ESA_LAB_DETECTIONS=${ESA_LAB_DETECTIONS:-threshold}
CERTUTIL=${CERTUTIL:-/usr/share/elasticsearch/bin/elasticsearch-certutil}
KIBANA_DOCKER=${KIBANA_DOCKER:-/usr/local/bin/kibana-docker}
ES_UID=1000        # elasticsearch and kibana in their images (group 0)
ENRICHER_UID=10001 # the `esa` user of this repository's Dockerfile
CA="$LAB_DIR/ca/ca.crt"

say() { printf 'lab-init: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

random() { # $1 bytes of randomness, URL-safe base64 without padding
  head -c "$1" /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'
}

put() { # put FILE OWNER VALUE: write a secret readable by OWNER only (kept when it exists)
  local file=$1 owner=$2 value=$3
  [ -s "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  (umask 077 && printf '%s' "$value" >"$file")
  chown "$owner:0" "$file"
}

read_secret() { [ -s "$1" ] || die "$1 is missing (run: lab-init.sh secrets)"; cat "$1"; }

secrets() {
  local elastic kibana_system
  mkdir -p "$LAB_DIR/root" "$LAB_DIR/es" "$LAB_DIR/kibana" "$LAB_DIR/enricher"
  chmod 755 "$LAB_DIR" "$LAB_DIR/es" "$LAB_DIR/kibana" "$LAB_DIR/enricher"
  chmod 700 "$LAB_DIR/root"
  # The first copy decides; the others repeat it (each container user reads only its own copy).
  elastic=$(cat "$LAB_DIR/root/elastic.password" 2>/dev/null || true)
  [ -n "$elastic" ] || elastic=${ESA_LAB_ELASTIC_PASSWORD:-$(random 24)}
  [ "${#elastic}" -ge 12 ] || die "ESA_LAB_ELASTIC_PASSWORD: at least 12 characters"
  put "$LAB_DIR/root/elastic.password" 0 "$elastic"
  put "$LAB_DIR/es/elastic.password" "$ES_UID" "$elastic"         # ELASTIC_PASSWORD_FILE (must be mode 600)
  put "$LAB_DIR/kibana/elastic.password" "$ES_UID" "$elastic"     # Kibana's healthcheck
  put "$LAB_DIR/enricher/elastic.password" "$ENRICHER_UID" "$elastic"
  kibana_system=$(cat "$LAB_DIR/root/kibana_system.password" 2>/dev/null || true)
  [ -n "$kibana_system" ] || kibana_system=$(random 24)
  put "$LAB_DIR/root/kibana_system.password" 0 "$kibana_system"
  put "$LAB_DIR/kibana/kibana_system.password" "$ES_UID" "$kibana_system"
  # Kibana: saved objects (alerting rules, connectors: what Detections need), sessions, reports; >= 32 chars.
  local key
  for key in encrypted_saved_objects security reporting; do
    put "$LAB_DIR/kibana/$key.key" "$ES_UID" "$(random 48)"
  done
  say "secrets in $LAB_DIR (the elastic password: $LAB_DIR/root/elastic.password)"
}

certs() {
  local tmp
  if [ -s "$LAB_DIR/es/http.crt" ] && [ -s "$CA" ]; then
    say "certificates already in $LAB_DIR"
    return 0
  fi
  tmp=$(mktemp -d)
  mkdir -p "$LAB_DIR/root" && chmod 700 "$LAB_DIR/root"
  "$CERTUTIL" ca --silent --pem --out "$tmp/ca.zip"
  (cd "$tmp" && unzip -q ca.zip)
  "$CERTUTIL" cert --silent --pem --ca-cert "$tmp/ca/ca.crt" --ca-key "$tmp/ca/ca.key" --name elasticsearch \
    --dns elasticsearch,localhost --ip 127.0.0.1 --out "$tmp/http.zip"
  (cd "$tmp" && unzip -q http.zip)
  mkdir -p "$LAB_DIR/ca" "$LAB_DIR/es"
  install -m 644 -o 0 -g 0 "$tmp/ca/ca.crt" "$CA"
  install -m 600 -o 0 -g 0 "$tmp/ca/ca.key" "$LAB_DIR/root/ca.key"
  install -m 644 -o "$ES_UID" -g 0 "$tmp/elasticsearch/elasticsearch.crt" "$LAB_DIR/es/http.crt"
  install -m 600 -o "$ES_UID" -g 0 "$tmp/elasticsearch/elasticsearch.key" "$LAB_DIR/es/http.key"
  chmod 755 "$LAB_DIR/ca"
  rm -rf "$tmp"
  say "CA and Elasticsearch certificate in $LAB_DIR (CA: $CA)"
}

# curl as `elastic`; the password goes through a config file of mode 600, never on a command line.
CURL_CONFIG=""
as_elastic() {
  local user
  user="elastic:$(read_secret "$LAB_DIR/root/elastic.password")" || exit 1
  user=${user//\\/\\\\}
  CURL_CONFIG=$(umask 077 && mktemp)
  trap 'rm -f "$CURL_CONFIG"' EXIT
  printf 'user = "%s"\n' "${user//\"/\\\"}" >"$CURL_CONFIG"
}
curl_elastic() { curl --silent --show-error --cacert "$CA" --config "$CURL_CONFIG" "$@"; }

users() {
  local password body answer i
  as_elastic
  password=$(read_secret "$LAB_DIR/root/kibana_system.password")
  body=$(printf '{"password":"%s"}' "$password")
  for i in $(seq 1 30); do
    if answer=$(curl_elastic -X POST -H 'Content-Type: application/json' --data-binary @- \
      "$LAB_ES_URL/_security/user/kibana_system/_password" <<<"$body") && [ "$answer" = "{}" ]; then
      say "kibana_system password set"
      return 0
    fi
    say "Elasticsearch refused the kibana_system password (try $i): ${answer:-no answer}"
    sleep 5
  done
  die "could not set the kibana_system password"
}

detections() {
  local rules=$LAB_RULES_DIR/elastic-security-rules.ndjson esql=$LAB_RULES_DIR/elastic-security-esql-rules.ndjson
  local file answer
  [ -s "$rules" ] || die "$rules: no rules to import"
  as_elastic
  file=$(mktemp)
  case "$ESA_LAB_DETECTIONS" in
    threshold) cp "$rules" "$file" ;;
    esql) # the ES|QL correlations replace the threshold ones (both would alert twice: docs/sigma.md)
      [ -s "$esql" ] || die "$esql: no ES|QL rules to import"
      grep -v '"type": "threshold"' "$rules" >"$file" || true
      cat "$esql" >>"$file"
      # Their alert suppression is a Platinum feature: a 30-day trial licence on the lab's node.
      answer=$(curl_elastic -X POST "$LAB_ES_URL/_license/start_trial?acknowledge=true") ||
        die "cannot reach Elasticsearch at $LAB_ES_URL"
      say "trial licence: $answer"
      ;;
    *) die "ESA_LAB_DETECTIONS=$ESA_LAB_DETECTIONS: threshold or esql" ;;
  esac
  answer=$(curl_elastic -X POST -H 'kbn-xsrf: true' --form "file=@$file;filename=esa-enricher-rules.ndjson;type=application/ndjson" \
    "$LAB_KIBANA_URL/api/detection_engine/rules/_import?overwrite=true") || die "cannot reach Kibana at $LAB_KIBANA_URL"
  rm -f "$file"  # Kibana's import wants the .ndjson name above
  case "$answer" in
    *'"success":true'*) say "detection rules imported ($ESA_LAB_DETECTIONS): $answer" ;;
    *) die "Kibana refused the detection rules: $answer" ;;
  esac
}

kibana() {
  ELASTICSEARCH_PASSWORD=$(read_secret "$LAB_DIR/kibana/kibana_system.password")
  XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY=$(read_secret "$LAB_DIR/kibana/encrypted_saved_objects.key")
  XPACK_SECURITY_ENCRYPTIONKEY=$(read_secret "$LAB_DIR/kibana/security.key")
  XPACK_REPORTING_ENCRYPTIONKEY=$(read_secret "$LAB_DIR/kibana/reporting.key")
  export ELASTICSEARCH_PASSWORD XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY XPACK_SECURITY_ENCRYPTIONKEY XPACK_REPORTING_ENCRYPTIONKEY
  exec "$KIBANA_DOCKER" "$@"
}

enricher() {
  ESA_KIBANA_PASSWORD=$(read_secret "$LAB_DIR/enricher/elastic.password")
  export ESA_KIBANA_PASSWORD
  exec esa-enricher "$@"
}

[ $# -gt 0 ] || die "usage: lab-init.sh secrets|certs|users|detections ... | kibana | enricher ARGS..."
while [ $# -gt 0 ]; do
  step=$1
  shift
  case "$step" in
    secrets | certs | users | detections) "$step" ;;
    kibana | enricher) "$step" "$@" ;;
    *) die "unknown step: $step" ;;
  esac
done
