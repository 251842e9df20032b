#!/usr/bin/env bash
# Runs every check and test of the workspace, against SQLite and a real PostgreSQL.
# Works on a fresh machine: installs what is missing, starts its own PostgreSQL, stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-true}
scripts/install-deps.sh

echo "== format"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/check-layout.sh

echo "== PostgreSQL"
pgdir=$(mktemp -d /tmp/mecplane-pg.XXXXXX)
chmod 755 "$pgdir"
pgenv=$(scripts/pg-start.sh "$pgdir/pg" "${MECPLANE_TEST_PG_PORT:-55432}")
eval "$pgenv"
[ -n "${MECPLANE_TEST_PG_URL:-}" ] || { echo "PostgreSQL did not start" >&2; exit 1; }
trap 'runuser -u postgres -- "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 || "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 || true' EXIT

echo "== tests"
cargo test --workspace --locked

echo "== fuzzing (bounded)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in package_reader appd_parser; do
  (cd meao/fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="${FUZZ_SECONDS:-30}" -rss_limit_mb=2048)
done
