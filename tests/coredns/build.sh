#!/usr/bin/env bash
# Builds the CoreDNS of the DNS benchmark (scripts/bench-dns.sh) from Go modules, once: CoreDNS
# v1.15.0 with the hosts and errors plugins only (main.go), cached as
# ${MECPLANE_TOOLS:-~/.cache/mecplane-tools}/coredns-<hash of the sources>/coredns. Prints its path.
set -euo pipefail
cd "$(dirname "$0")"
tools=${MECPLANE_TOOLS:-$HOME/.cache/mecplane-tools}
out=$tools/coredns-$(cat go.mod go.sum main.go build.sh | sha256sum | cut -c1-16)
if [ ! -x "$out/coredns" ]; then
  start=$(date +%s)
  mkdir -p "$out"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" . >&2
  mv "$out/coredns.tmp" "$out/coredns"
  echo "coredns: built in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/coredns"
