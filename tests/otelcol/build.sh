#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of the trace test (tests/tests/traces.rs) from Go modules,
# once: a distribution made by the collector's builder with only the OTLP receiver and the
# file exporter (the sources gen.sh generated, committed), cached under
# ${MECPLANE_TOOLS:-~/.cache/mecplane-tools} by scripts/go-module-build.sh. Prints its path, the
# MECPLANE_OTELCOL of the test.
set -euo pipefail
cd "$(dirname "$0")"
exec ../../scripts/go-module-build.sh . otelcol
