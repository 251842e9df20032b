#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster on a loopback port and prints its admin URL.
# Usage: eval "$(scripts/pg-start.sh DIR PORT)"  (exports MECPLANE_TEST_PG_URL, PG_TEST_DIR)
set -euo pipefail
dir=${1:?data dir}
port=${2:-28432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
run() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# the directory is wiped: refuse anything that is not a directory (say /dev/null, given by
# mistake, would become one)
if [ -e "$dir" ] && [ ! -d "$dir" ]; then echo "$0: $dir exists and is not a directory" >&2; exit 1; fi
rm -rf "$dir" && mkdir -p "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
run "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
echo "export MECPLANE_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/postgres PG_TEST_DIR=$dir PG_TEST_BIN=$bin"
