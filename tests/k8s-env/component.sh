#!/usr/bin/env bash
# Stops or (re)starts one component of an environment made by up.sh, e.g. to
# take a kube-apiserver away in the middle of an operation:
#   component.sh STATE_DIR stop|start NAME      (NAME as in STATE_DIR/pids)
set -euo pipefail
D=$1 action=$2 name=$3
case "$action" in
  start)
    "$D/cmd/$name.sh" >> "$D/logs/$name.log" 2>&1 &
    echo "$! $name" >> "$D/pids"
    ;;
  stop)
    pid=$(awk -v n="$name" '$2 == n {print $1}' "$D/pids" | tail -1)
    [ -n "$pid" ] || { echo "component.sh: $name not running" >&2; exit 1; }
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    awk -v p="$pid" '$1 != p' "$D/pids" > "$D/pids.new" && mv "$D/pids.new" "$D/pids"
    ;;
  *) echo "usage: component.sh STATE_DIR stop|start NAME" >&2; exit 2 ;;
esac
