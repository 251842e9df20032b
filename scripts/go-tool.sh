#!/usr/bin/env bash
# Builds a Go command from the Go module proxy once and prints its path:
#   scripts/go-tool.sh MODULE/cmd/NAME@VERSION
# cached as ${MECPLANE_TOOLS:-~/.cache/mecplane-tools}/go/NAME-VERSION.
set -euo pipefail
pkg=$1
name=$(basename "${pkg%@*}") version=${pkg##*@}
out=${MECPLANE_TOOLS:-$HOME/.cache/mecplane-tools}/go
if [ ! -x "$out/$name-$version" ]; then
  start=$(date +%s)
  mkdir -p "$out/tmp-$name"
  GOBIN="$out/tmp-$name" CGO_ENABLED=0 go install -trimpath "$pkg" >&2
  mv "$out/tmp-$name/$name" "$out/$name-$version"
  rmdir "$out/tmp-$name"
  echo "go-tool: built $name $version in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/$name-$version"
