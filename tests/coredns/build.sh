#!/usr/bin/env bash
# Builds the CoreDNS of the DNS benchmark (scripts/bench-dns.sh) from Go modules, once: CoreDNS
# v1.15.0 with the hosts and errors plugins only (main.go), cached under
# ${MECPLANE_TOOLS:-~/.cache/mecplane-tools} by scripts/go-module-build.sh. Prints its path.
set -euo pipefail
cd "$(dirname "$0")"
exec ../../scripts/go-module-build.sh . coredns
