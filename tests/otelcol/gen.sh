#!/usr/bin/env bash
# Regenerates the collector's sources (components.go, main*.go, go.mod, go.sum) from
# builder-config.yaml with the collector's builder (run by hand when bumping the collector;
# the result is committed, so that build.sh only compiles). Every collector module stays at
# one release: the builder's, the receiver's and the exporter's.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=$(awk '/^  version:/ {print $2}' builder-config.yaml)
builder=$(../../scripts/go-tool.sh "go.opentelemetry.io/collector/cmd/builder@v$VERSION")
"$builder" --config builder-config.yaml --skip-compilation
