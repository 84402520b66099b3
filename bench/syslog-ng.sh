#!/usr/bin/env bash
# syslog-ng for the replay bench, without installing it. Debian's syslog-ng-core conflicts with rsyslog (which
# the tests use: installing one removes the other), so the package is downloaded once, unpacked under
# bench/.data/syslog-ng and run from there with its own libraries and modules. Its shared-library dependencies
# (no conflict with anything) are installed with apt-get when missing. Arguments go to syslog-ng.
#
#   bench/syslog-ng.sh --version
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${ESA_SYSLOG_NG_ROOT:-$HERE/.data/syslog-ng}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ! -x "$ROOT/usr/sbin/syslog-ng" ]; then
  deps=$(apt-cache depends syslog-ng-core | sed -n 's/^ *|\{0,1\}Depends: \([a-z0-9.+-]*\)$/\1/p' | grep -v -e '^lsb-base$' -e '^sysvinit-utils$')
  missing=()
  for d in $deps; do dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d"); done
  if [ ${#missing[@]} -gt 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 777 "$tmp"  # apt-get download runs as _apt where it can
  (cd "$tmp" && apt-get download -q syslog-ng-core >&2)
  mkdir -p "$ROOT"
  dpkg -x "$tmp"/syslog-ng-core_*.deb "$ROOT"
fi
moddir=$(ls -d "$ROOT"/usr/lib/syslog-ng/[0-9]* | sort -V | tail -1)
export LD_LIBRARY_PATH="$ROOT/usr/lib/syslog-ng${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$ROOT/usr/sbin/syslog-ng" --module-path="$moddir" "$@"
