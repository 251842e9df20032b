#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of the trace test (tests/tests/traces.rs) from Go modules,
# once: a distribution made by the collector's builder with only the OTLP receiver and the
# file exporter (the sources gen.sh generated, committed), cached as
# ${MECPLANE_TOOLS:-~/.cache/mecplane-tools}/otelcol-<hash of the sources>/otelcol. Prints its
# path, the MECPLANE_OTELCOL of the test.
set -euo pipefail
cd "$(dirname "$0")"
tools=${MECPLANE_TOOLS:-$HOME/.cache/mecplane-tools}
out=$tools/otelcol-$(cat go.mod go.sum ./*.go build.sh | sha256sum | cut -c1-16)
if [ ! -x "$out/otelcol" ]; then
  start=$(date +%s)
  mkdir -p "$out"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/otelcol.tmp" . >&2
  mv "$out/otelcol.tmp" "$out/otelcol"
  echo "otelcol: built in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/otelcol"
