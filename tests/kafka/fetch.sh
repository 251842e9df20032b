#!/usr/bin/env bash
# Fetches the Apache Kafka broker (the runtime classpath of pom.xml) from Maven Central, once:
# the jars are cached under ${MECPLANE_TOOLS:-~/.cache/mecplane-tools}/kafka-<hash of pom.xml>/libs
# (Maven's own repository beside them). Prints that directory, the MECPLANE_KAFKA of the event
# tests. Needs Java 17+ (Kafka 4 brokers) and Maven.
set -euo pipefail
cd "$(dirname "$0")"
tools=${MECPLANE_TOOLS:-$HOME/.cache/mecplane-tools}
out=$tools/kafka-$(cat pom.xml fetch.sh | sha256sum | cut -c1-16)
if [ ! -d "$out/libs" ]; then
  start=$(date +%s)
  rm -rf "$out/tmp"
  mvn -B -q -Dstyle.color=never -f pom.xml -Dmaven.repo.local="$tools/m2" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$out/tmp" >&2
  mv "$out/tmp" "$out/libs"
  echo "kafka: fetched $(ls "$out/libs" | wc -l) jars in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/libs"
