#!/usr/bin/env bash
# Enforces the layering of shared/architecture.md that the compiler cannot:
# every crate opts into the workspace lints, API handlers hold no SQL, domain code no HTTP server,
# the clients of the REST APIs and applications link no server crate.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for manifest in */Cargo.toml; do
  grep -q '^\[lints\]' "$manifest" && grep -q 'workspace = true' "$manifest" ||
    { echo "$manifest: missing [lints] workspace = true"; fail=1; }
done
if grep -rn 'sqlx' mep/src/api meao/src/api 2>/dev/null; then echo "api/ must not use sqlx"; fail=1; fi
for domain in mep/src/platform mep/src/timing.rs; do
  if grep -rn 'use axum\|use tonic' "$domain"; then echo "$domain: domain code must not use axum or tonic"; fail=1; fi
done
# the crash drill aborts the process on a configuration key: never in a build that ships
if cargo tree -p meao --no-dev-dependencies -e features --locked 2>/dev/null | grep -q 'fault-drill'; then
  echo "meao: the fault-drill feature is on in a normal build"; fail=1
fi
# clients of the REST APIs (the operator CLI), the package format and what an application links
# (the Mp1 client, the sample application) link no server crate, so they work against a remote
# MEAO or MEP: their [dependencies] name only these workspace crates
deps() { awk '/^\[/{on=($0=="[dependencies]")} on && /^[a-z0-9_-]+ *[.=]/{sub(/[ .=].*/,""); print}' "$1"; }
for crate in mecctl:api-specs,app-package app-package: mp1-client:api-specs sample-app:; do
  name=${crate%%:*} allowed=",${crate#*:},"
  for dep in $(deps "$name/Cargo.toml"); do
    case "$dep" in
      api-specs | app-package | server-kit | meao | mep | vim-adapters | upf-rules | e2e)
        [[ $allowed == *",$dep,"* ]] || { echo "$name must not depend on $dep"; fail=1; } ;;
    esac
  done
done
exit $fail
