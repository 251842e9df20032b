#!/usr/bin/env bash
# Runs every check and test of the workspace, against SQLite and a real PostgreSQL.
# Works on a fresh machine: installs what is missing, starts its own PostgreSQL, stops it after.
# A failing check does not stop the run: every check runs, the failures are listed at the end
# and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-true}
# a CI run starts from a clean clone: incremental compilation data would only cost time and
# gigabytes of disk
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
timings=()
lap_at=0
# lap NAME: records the time since the previous lap as the set-up step NAME
lap() {
  timings+=("$(printf '%5ds  %-6s %s' $((SECONDS - lap_at)) set-up "$1")")
  lap_at=$SECONDS
}
scripts/install-deps.sh
export MECPLANE_PYTHON=${MECPLANE_VENV:-$HOME/.cache/mecplane-venv}/bin/python
export MECPLANE_KAFKA
MECPLANE_KAFKA=$(tests/kafka/fetch.sh)
lap "packages, tools and the Kafka broker"

failed=()
# each check's output, for the end of a failed run (a long run's log is read from its end)
checks_log=$(mktemp -d /tmp/mecplane-checks.XXXXXX)
# check NAME COMMAND...: runs one check (in the background, so that `set -e` holds inside it),
# records its failure instead of stopping the run, and how long it took.
check() {
  local name=$1 start=$SECONDS verdict=ok; shift
  echo "== $name"
  { "$@" 2>&1 | tee "$checks_log/${name//[^a-zA-Z0-9]/_}.log"; } &
  wait $! || { failed+=("$name"); verdict=FAILED; }
  timings+=("$(printf '%5ds  %-6s %s' $((SECONDS - start)) "$verdict" "$name")")
  echo "== $name: $verdict after $((SECONDS - start))s"
  lap_at=$SECONDS
}

check format cargo fmt --all -- --check
check lints cargo clippy --workspace --all-targets --locked -- -D warnings
check layout scripts/check-layout.sh

echo "== PostgreSQL"
pgdir=$(mktemp -d /tmp/mecplane-pg.XXXXXX)
chmod 755 "$pgdir"
pgenv=$(scripts/pg-start.sh "$pgdir/pg" "${MECPLANE_TEST_PG_PORT:-28432}")
eval "$pgenv"
[ -n "${MECPLANE_TEST_PG_URL:-}" ] || { echo "PostgreSQL did not start" >&2; exit 1; }
lap PostgreSQL
k8sdir=""
S3_TEST_PID=""
s3dir=""
# stops what the run started and removes its state (databases, buckets, clusters: gigabytes
# a machine that runs CI again and again would otherwise keep)
cleanup() {
  [ -z "$k8sdir" ] || tests/k8s-env/down.sh "$k8sdir" 2>/dev/null || true
  [ -z "$S3_TEST_PID" ] || kill "$S3_TEST_PID" 2>/dev/null || true
  runuser -u postgres -- "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 ||
    "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$pgdir" ${s3dir:+"$s3dir"} ${k8sdir:+"$k8sdir"}
}
trap cleanup EXIT

# the S3-compatible server of the package storage tests (versitygw: built from Go modules once,
# then cached); without it those tests fail under CI=true
echo "== S3-compatible server (versitygw)"
s3dir=$(mktemp -d /tmp/mecplane-s3.XXXXXX)
if s3env=$(scripts/s3-start.sh "$s3dir/s3" "${MECPLANE_TEST_S3_PORT:-28070}"); then
  eval "$s3env"
else
  echo "the S3-compatible server did not start: the S3 tests will fail" >&2
fi
lap "S3-compatible server"

echo "== Kubernetes test clusters (tests/k8s-env: built from Go modules once, then cached)"
k8sdir=$(mktemp -d /tmp/mecplane-k8s.XXXXXX)
tests/k8s-env/up.sh "$k8sdir"
export MECPLANE_K8S_ENV=$k8sdir
lap "Kubernetes test clusters"

images() {
  "${MECPLANE_VENV:-$HOME/.cache/mecplane-venv}/bin/hadolint" deploy/images/Dockerfile
  local built
  built=$(deploy/images/build.sh)
  deploy/images/check.sh $built
}
check "images (buildah, no Docker daemon)" images
check "helm chart" deploy/helm/test.sh
rules() {
  local promtool
  promtool=$(scripts/go-tool.sh github.com/prometheus/prometheus/cmd/promtool@v0.316.0)
  "$promtool" check rules deploy/monitoring/alerts.yaml
}
check "alerting rules (promtool)" rules

# the OpenTelemetry Collector the trace test exports to (tests/otelcol: built from Go modules
# once, then cached); without it that test fails under CI=true
otelcol_path=$(mktemp /tmp/mecplane-otelcol.XXXXXX)
otelcol() { tests/otelcol/build.sh >"$otelcol_path"; }
check "OpenTelemetry Collector (tests/otelcol)" otelcol
export MECPLANE_OTELCOL
MECPLANE_OTELCOL=$(cat "$otelcol_path")
rm -f "$otelcol_path"

# the CNCF distribution registry the image tests push to and resolve at (built from Go modules
# once, then cached); without it those tests fail under CI=true
export MECPLANE_REGISTRY
MECPLANE_REGISTRY=$(scripts/go-tool.sh github.com/distribution/distribution/v3/cmd/registry@v3.0.0) ||
  echo "the distribution registry did not build: the image tests will fail" >&2
lap "distribution registry"

# every test binary runs even when one fails; what failed is listed at the end
tests_log=$(mktemp /tmp/mecplane-tests.XXXXXX.log)
run_tests() { cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$tests_log"; }
check tests run_tests

# the APIs of a debug MEAO and MEP under schemathesis, from the checked-in OpenAPI documents
# (bounded: FUZZ_API_SECONDS per service); uses the binaries the tests built
check "API fuzzing (schemathesis)" env FUZZ_API_SECONDS=120 scripts/fuzz-api.sh

# the bounded runs are a smoke test of the checked-in seeds and their mutations (longer runs
# of the same targets are for a machine of their own, for hours): built unoptimised (--dev) and without
# AddressSanitizer (the code under test is safe Rust; panics, hangs and memory blow-ups are still
# caught), at fewer executions per second. By default only the PFCP decoder, whose build takes a
# minute: the MEAO's targets (meao/fuzz:package_reader meao/fuzz:appd_parser) compile the MEAO's
# whole dependency tree under the nightly toolchain once more, some 15 minutes on a machine with
# empty caches, and their input (packages, AppDs) is also the API fuzzer's; FUZZ_TARGETS names
# the targets to run
fuzz() {
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  for target in ${FUZZ_TARGETS:-upf-rules/fuzz:pfcp_message}; do
    (cd "${target%%:*}" && cargo +nightly fuzz run --dev --sanitizer none "${target#*:}" -- -max_total_time="${FUZZ_SECONDS:-30}" -rss_limit_mb=2048)
  done
}
check "fuzzing (bounded)" fuzz

echo "== time per check (of ${SECONDS}s in all):"
printf '%s\n' "${timings[@]}"
if ((${#failed[@]})); then
  echo "== FAILED: ${failed[*]}"
  for name in "${failed[@]}"; do
    if [ "$name" = tests ]; then
      echo "-- failed tests (full output in $tests_log):"
      scripts/test-summary.sh "$tests_log"
    else
      echo "-- the end of $name (full output in $checks_log):"
      tail -n 40 "$checks_log/${name//[^a-zA-Z0-9]/_}.log"
    fi
  done
  exit 1
fi
echo "== all checks passed"
