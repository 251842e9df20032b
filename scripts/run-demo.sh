#!/usr/bin/env bash
# Runs the MEAO and a MEP with embedded defaults (SQLite and files under ./data), in the
# foreground; Ctrl-C stops both. Configs: deploy/examples/meao.toml and mep.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build --release --locked -p meao -p mep
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p data
"$bin"/meao --config deploy/examples/meao.toml &
meao_pid=$!
"$bin"/mep --config deploy/examples/mep.toml &
mep_pid=$!
trap 'kill $meao_pid $mep_pid 2>/dev/null; wait' INT TERM EXIT
echo "MEAO: http://127.0.0.1:8080/app_pkgm/v1   MEP: http://127.0.0.1:8081   (Ctrl-C to stop)"
wait
