#!/usr/bin/env bash
# Builds the Go module in DIR (a command of the project's tests or benchmarks, its sources
# committed) once and prints the binary's path:
#   scripts/go-module-build.sh DIR NAME
# cached as ${MECPLANE_TOOLS:-~/.cache/mecplane-tools}/NAME-<hash of DIR's go.mod, go.sum,
# *.go and build.sh>/NAME.
set -euo pipefail
dir=$1 name=$2
cd "$dir"
tools=${MECPLANE_TOOLS:-$HOME/.cache/mecplane-tools}
out=$tools/$name-$(cat go.mod go.sum ./*.go build.sh | sha256sum | cut -c1-16)
if [ ! -x "$out/$name" ]; then
  start=$(date +%s)
  mkdir -p "$out"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/$name.tmp" . >&2
  mv "$out/$name.tmp" "$out/$name"
  echo "$name: built in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/$name"
