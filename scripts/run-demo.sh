#!/usr/bin/env bash
# Runs the MEAO and a MEP with embedded defaults (SQLite and files under ./data), in the
# foreground; Ctrl-C stops both. Configs: deploy/examples/meao.toml and mep.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --runtime >/dev/null
cargo build --release --locked -p meao -p mep -p mecctl
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p data
# the MEAO-MEP link is mutual TLS: a demo CA, the MEAO's certificate and site paris-1's
scripts/demo-pki.sh data/pki
"$bin"/meao --config deploy/examples/meao.toml &
meao_pid=$!
"$bin"/mep --config deploy/examples/mep.toml &
mep_pid=$!
trap 'kill $meao_pid $mep_pid 2>/dev/null; wait' INT TERM EXIT

# onboard the video analytics example once, so there is something to instantiate (the README's
# walk-throughs onboard another package and remove what they add, so they can be run again)
api=http://127.0.0.1:8080
for _ in $(seq 100); do curl -sf $api/healthz >/dev/null && break; sleep 0.1; done
demo() { MECCTL_CONFIG=/dev/null MECCTL_SERVER=$api MECCTL_CLIENT_ID=oss MECCTL_CLIENT_SECRET=oss-secret "$bin"/mecctl "$@"; }
if ! demo package get 7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51 >/dev/null 2>&1; then
  demo package push deploy/examples/packages/video-analytics --wait
fi
echo "MEAO: $api (app_pkgm/v1, app_lcm/v1, inventory/v1)   MEP: http://127.0.0.1:8081"
echo "portal: $api/portal/ (operator / operator-demo; viewer / viewer-demo; admin / admin-demo)"
echo "mecctl: $bin/mecctl (README: walk-throughs)   Ctrl-C stops both services"
wait
