#!/usr/bin/env bash
# Assemble the home of es.sh's "secure" profile: the default build's lib/ and modules/ (symlinked), plus
# modules/x-pack-core and modules/x-pack-security from Maven Central (pom.xml here), laid out as a distribution does.
#
#   assemble.sh <default dist dir> <secure home dir> <jdk home>
#
# Two parts of the real distribution are not on Maven Central and are replaced by stand-ins built here:
# - x-pack-template-resources (Java module org.elasticsearch.xcore.templates): templates-stub/, same API, no templates;
# - OpenSAML 4 and Elastic's es-opensaml-security-api (Shibboleth's repository only): modules with the names
#   x-pack-security requires holding empty types (opensaml_stubs.py), so the module layer resolves and the node
#   can build its SAML actions by reflection; the SAML realm cannot be configured on this node;
# - analysis-common (unpublished): analysis/, the three components the .security index's analyzer uses.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIST="$1"
HOME_DIR="$2"
JH="$3"
ES_VERSION="$(sed -n 's:.*<es.version>\(.*\)</es.version>.*:\1:p' "$HERE/pom.xml")"
OPENSAML_MODULES="org.opensaml.core org.opensaml.saml org.opensaml.saml.impl org.opensaml.security org.opensaml.security.impl org.opensaml.xmlsec org.opensaml.xmlsec.impl net.shibboleth.utilities.java.support"
# Jars of x-pack-security's tree that a distribution leaves out: compile-time annotations (split packages on the
# module path) and a second jcip/slf4j (x-pack-core's slf4j 2 is the one its layer reads).
DROP_RE='^(jakarta\.activation-api|checker-qual|error_prone_annotations|j2objc-annotations|jsr305|listenablefuture|jcip-annotations-1\.0\.jar|slf4j-api-1\.)'

tmp="$HOME_DIR.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/modules" "$tmp/build"
ln -s "$DIST/lib" "$tmp/lib"
for m in "$DIST"/modules/*; do
  case "$(basename "$m")" in x-pack-core | x-pack-security) continue ;; esac  # this profile brings its own
  ln -s "$m" "$tmp/modules/$(basename "$m")"
done

base() { sed -E 's/-[0-9][0-9A-Za-z.+_-]*\.jar$//' <<<"$1"; }  # artifact name of a jar file name
has_base() { # $1 = dir, $2 = artifact name
  local f
  for f in "$1"/*.jar; do [ -e "$f" ] && [ "$(base "$(basename "$f")")" = "$2" ] && return 0; done
  return 1
}

for m in x-pack-core x-pack-security; do
  # shellcheck disable=SC2086 # ESA_ES_MAVEN_ARGS is a list of arguments
  JAVA_HOME="$JH" mvn -q -B ${ESA_ES_MAVEN_ARGS:-} -f "$HERE/pom.xml" -Dxpack.module="$m" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/build/$m" >"$tmp/build/$m.log" 2>&1 \
    || { tail -n 20 "$tmp/build/$m.log" >&2; echo "assemble.sh: Maven could not fetch $m" >&2; exit 1; }
  mkdir -p "$tmp/modules/$m"
  for j in "$tmp/build/$m"/*.jar; do
    n="$(basename "$j")"
    b="$(base "$n")"
    if has_base "$DIST/lib" "$b" || [[ "$n" =~ $DROP_RE ]]; then continue; fi
    if [ "$m" = x-pack-security ] && has_base "$tmp/modules/x-pack-core" "$b"; then continue; fi
    cp "$j" "$tmp/modules/$m/"
  done
  (cd "$tmp/modules/$m" && "$JH/bin/jar" xf "$tmp/modules/$m/$m-$ES_VERSION.jar" "META-INF/es-plugins/$m" \
    && mv "META-INF/es-plugins/$m"/* . && rm -rf META-INF)
done

# The stand-in modules, compiled for the JDK the node runs on.
"$JH/bin/javac" --release 21 -d "$tmp/build/templates" "$HERE/templates-stub/module-info.java" \
  "$HERE/templates-stub/org/elasticsearch/xpack/core/template/resources/TemplateResources.java"
"$JH/bin/jar" cf "$tmp/modules/x-pack-core/esa-xcore-templates-stub.jar" -C "$tmp/build/templates" .
# OpenSAML: the types x-pack-security's classes name, in the first module; the other names are empty modules.
first=1
for name in $OPENSAML_MODULES; do
  d="$tmp/build/stub-$name"
  mkdir -p "$d/classes"
  if [ "$first" = 1 ]; then
    python3 "$HERE/opensaml_stubs.py" "$tmp/modules/x-pack-security/x-pack-security-$ES_VERSION.jar" "$d" "$name" >&2
    first=0
  else
    mkdir -p "$d/src" && echo "module $name {}" >"$d/src/module-info.java"
  fi
  # shellcheck disable=SC2046 # one argument per source file
  "$JH/bin/javac" --release 21 -d "$d/classes" $(find "$d/src" -name '*.java')
  "$JH/bin/jar" cf "$tmp/modules/x-pack-security/esa-stub-$name.jar" -C "$d/classes" .
done

# uax_url_email, pattern_capture and unique (the .security index's analyzer), as analysis-common has them.
mkdir -p "$tmp/build/analysis" "$tmp/modules/esa-security-analysis"
"$JH/bin/javac" --release 21 -cp "$DIST/lib/*" -d "$tmp/build/analysis" \
  "$HERE/analysis/esa/services/elasticsearch/analysis/SecurityAnalysisPlugin.java"
"$JH/bin/jar" cf "$tmp/modules/esa-security-analysis/esa-security-analysis.jar" -C "$tmp/build/analysis" .
cp "$HERE/analysis/plugin-descriptor.properties" "$tmp/modules/esa-security-analysis/"
rm -rf "$tmp/build"
rm -rf "$HOME_DIR"
mv "$tmp" "$HOME_DIR"
