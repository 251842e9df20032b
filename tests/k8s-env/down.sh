#!/usr/bin/env bash
# Stops what up.sh STATE_DIR started (by recorded pid only), newest first.
set -uo pipefail
D=$1
[ -f "$D/pids" ] || exit 0
tac "$D/pids" | while read -r pid name; do
  kill "$pid" 2>/dev/null && echo "k8s-env: stopped $name" >&2
done
for _ in $(seq 40); do
  alive=0
  while read -r pid _; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$D/pids"
  [ "$alive" = 0 ] && break
  sleep 0.25
done
while read -r pid _; do kill -9 "$pid" 2>/dev/null; done < "$D/pids"
rm -f "$D/pids"
