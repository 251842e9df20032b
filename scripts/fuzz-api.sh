#!/usr/bin/env bash
# Fuzzes the HTTP APIs of the MEAO and the MEP with schemathesis (property-based, from the
# checked-in OpenAPI documents api-specs/openapi/*.json): debug builds started on the demo's
# configuration (deploy/examples/, ports moved, state in a temporary directory), a package
# onboarded and an instance running on paris-1 first so that lists and the MEP hold real
# resources, every request authorized with a token from the service's /oauth2/token. Every
# check schemathesis has runs (server errors, status codes, content types, headers and
# response schemas against the document, negative data rejected, positive data accepted, ...),
# with a fixed seed, a bounded number of examples per operation and a wall-clock bound per
# service. Fails on any finding (a server error, a response outside the document, a documented
# request refused or an undocumented one accepted, a schemathesis error), a panic or a service
# that does not stop; prints each finding with its reproducing curl and a summary per service.
#
# Environment: FUZZ_API_SECONDS (wall-clock bound per service, default 180),
# FUZZ_API_EXAMPLES (examples per operation and phase, default 30), FUZZ_API_SEED (default
# 20261201), FUZZ_API_PORT (first of four loopback ports, default 18580), FUZZ_API_BIN (a
# directory with meao, mep and mecctl to use instead of building them), FUZZ_API_KEEP=1 keeps
# the working directory (logs, reports). Findings that are not defects are dropped, each with
# its reason, in scripts/fuzz-api-hooks.py. Under CI=true a missing schemathesis fails the
# run; otherwise the run says it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
st=${MECPLANE_VENV:-$HOME/.cache/mecplane-venv}/bin/schemathesis
if [ ! -x "$st" ]; then
  echo "fuzz-api: schemathesis is not installed ($st; scripts/install-deps.sh installs it)" >&2
  [ "${CI:-}" = true ] && exit 1
  echo "fuzz-api: SKIPPED"
  exit 0
fi
seconds=${FUZZ_API_SECONDS:-180}
examples=${FUZZ_API_EXAMPLES:-30}
seed=${FUZZ_API_SEED:-20261201}
port=${FUZZ_API_PORT:-18580}
meao_port=$port link_port=$((port + 1)) mep_port=$((port + 2)) dns_port=$((port + 3))

# the debug binaries the tests run (nothing to build after `cargo test --workspace`)
if [ -z "${FUZZ_API_BIN:-}" ]; then
  cargo test --workspace --locked --no-run -q 2>&1 | grep -v '^  Executable' || true
fi
bin=$(realpath "${FUZZ_API_BIN:-${CARGO_TARGET_DIR:-target}/debug}")
for b in meao mep mecctl; do
  [ -x "$bin/$b" ] || { echo "fuzz-api: $bin/$b was not built" >&2; exit 1; }
done

work=$(mktemp -d /tmp/mecplane-fuzz-api.XXXXXX)
pids=()
# stop: SIGTERM to the services, 30 s for them to end, then SIGKILL to any still running
# (a service that does not stop fails the run: terminate is how its pod ends)
stopped=""
stop() {
  [ -n "$stopped" ] && return 0
  stopped=1
  local pid hung=0
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "fuzz-api: $(ps -o args= -p "$pid") did not stop within 30 s of SIGTERM; killed" >&2
      kill -9 "$pid" 2>/dev/null || true
      hung=1
    fi
    wait "$pid" 2>/dev/null || true
  done
  return "$hung"
}
cleanup() {
  local rc=$?
  stop || rc=1
  if [ "${FUZZ_API_KEEP:-}" = 1 ]; then echo "fuzz-api: kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT

# the demo's configuration as it is, run in $work (its relative paths: data/...), ports moved
cd "$work"
mkdir data
"$repo/scripts/demo-pki.sh" data/pki
MEAO__LISTEN=127.0.0.1:$meao_port MEAO__MEP_LINK__LISTEN=127.0.0.1:$link_port \
  "$bin/meao" --config "$repo/deploy/examples/meao.toml" >meao.log 2>&1 &
pids+=($!)
MEP__LISTEN=127.0.0.1:$mep_port MEP__DNS__LISTEN=127.0.0.1:$dns_port MEP__MEAO__URL=https://localhost:$link_port \
  "$bin/mep" --config "$repo/deploy/examples/mep.toml" >mep.log 2>&1 &
pids+=($!)
meao=http://127.0.0.1:$meao_port mep=http://127.0.0.1:$mep_port
for url in $meao $mep; do
  for _ in $(seq 300); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "$url/healthz" >/dev/null || { echo "fuzz-api: $url did not start" >&2; tail -20 ./*.log >&2; exit 1; }
done

# token URL CLIENT:SECRET: a bearer token with every scope of the client
token() {
  curl -sf -u "$2" -d grant_type=client_credentials "$1/oauth2/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

# real resources: the video analytics package onboarded, an instance of it running on paris-1
# (its configuration on the MEP: services, traffic and DNS rules)
ctl() { MECCTL_CONFIG=/dev/null MECCTL_SERVER=$meao MECCTL_CLIENT_ID=oss MECCTL_CLIENT_SECRET=oss-secret "$bin/mecctl" "$@"; }
ctl package push "$repo/deploy/examples/packages/video-analytics" --wait >seed.log
ctl app deploy video-analytics --name va-fuzz --site paris-1 --wait >>seed.log

# fuzz NAME URL DOCUMENT TOKEN [ARGS...]: one schemathesis run, its summary, its verdict
failed=()
fuzz() {
  local name=$1 url=$2 doc=$3 tok=$4
  shift 4
  echo "-- $name: $url, $doc, at most $examples examples per operation, ${seconds}s"
  local start=$SECONDS rc=0
  SCHEMATHESIS_HOOKS=$repo/scripts/fuzz-api-hooks.py timeout --kill-after=30 $((seconds * 2)) "$st" run "$repo/$doc" --url "$url" \
    --header "Authorization: Bearer $tok" \
    --checks all --max-examples "$examples" --max-time "$seconds" --seed "$seed" --workers 2 --request-timeout 10 --no-color \
    --report junit,ndjson --report-dir "$work/report-$name" --output-truncate true \
    "$@" >"$name.out" 2>&1 || rc=$?
  # the failures (each with a reproducing curl), then the counts
  sed -n '/^=* FAILURES =*$/,/^=* \(WARNINGS\|SUMMARY\) =*$/p' "$name.out" | cut -c1-400 | head -300
  sed -n '/^=* SUMMARY =*$/,$p' "$name.out" | grep -v '^$'
  grep -q '^=* SUMMARY =*$' "$name.out" || tail -n 20 "$name.out"
  echo "-- $name: exit $rc after $((SECONDS - start))s"
  # every finding fails the run: a server error (ST101), a response outside the documented
  # schema, a documented request refused or an undocumented one accepted, a schemathesis error
  if grep -rqs 'ST101' "$name.out" "$work/report-$name"; then
    failed+=("$name (server error)")
  elif ((rc != 0)); then
    failed+=("$name (findings above)")
  fi
}

# the MEP first: the MEAO's run may terminate the instance whose configuration the MEP holds
fuzz mep "$mep" api-specs/openapi/mep.json "$(token "$mep" operator:operator-secret)"
fuzz meao "$meao" api-specs/openapi/meao.json "$(token "$meao" oss:oss-secret)"

stop || failed+=("shutdown")
for svc in meao mep; do
  if grep -qE 'panicked|thread .* panicked' "$svc.log"; then
    echo "fuzz-api: $svc panicked:" >&2
    grep -B2 -A8 'panicked' "$svc.log" | head -40 >&2
    failed+=("$svc (panic)")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz-api: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz-api: no server error and no response outside the documented schema on either service"
