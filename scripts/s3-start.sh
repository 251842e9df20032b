#!/usr/bin/env bash
# Starts a throw-away S3-compatible server on a loopback port: Versity's S3 gateway (versitygw,
# Apache-2.0) over a directory, built from Go modules once (scripts/go-tool.sh), with one bucket.
# Usage: eval "$(scripts/s3-start.sh DIR PORT)"
#   exports MECPLANE_TEST_S3="ENDPOINT BUCKET ACCESS_KEY SECRET_KEY" and S3_TEST_PID
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?data dir}
port=${2:-28070}
versitygw=$(scripts/go-tool.sh github.com/versity/versitygw/cmd/versitygw@v1.8.0)
# the directory is wiped: refuse anything that is not a directory (say /dev/null, given by
# mistake, would become one)
if [ -e "$dir" ] && [ ! -d "$dir" ]; then echo "$0: $dir exists and is not a directory" >&2; exit 1; fi
rm -rf "$dir" && mkdir -p "$dir/root/mecplane-test" "$dir/meta"
access=mecplane-test secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ROOT_ACCESS_KEY_ID=$access ROOT_SECRET_ACCESS_KEY=$secret setsid "$versitygw" --quiet \
  --port "127.0.0.1:$port" posix --sidecar "$dir/meta" "$dir/root" >"$dir/server.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "export MECPLANE_TEST_S3='http://127.0.0.1:$port mecplane-test $access $secret' S3_TEST_PID=$pid"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
cat "$dir/server.log" >&2
kill "$pid" 2>/dev/null || true
echo "versitygw did not start" >&2
exit 1
