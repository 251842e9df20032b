#!/usr/bin/env bash
# Discovery benchmark: GET /mec_service_mgmt/v1/services on a release MEP (OAuth on, SQLite,
# 10 registered services) under wrk with 100 connections, against nginx serving a static file of
# the same size on the same machine; prints throughput, latency, the ratio and the MEP's RSS.
# Usage: scripts/bench-discovery.sh [duration_secs]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
for tool in wrk nginx; do
  command -v $tool >/dev/null || { echo "installing $tool"; apt-get install -y --no-install-recommends wrk nginx-light >/dev/null; }
done
cargo build --release -p mep --locked >/dev/null 2>&1
work=$(mktemp -d /tmp/mep-bench.XXXXXX)
cleanup() { kill "${mep_pid:-}" "${nginx_pid:-}" 2>/dev/null || true; nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/mep.toml" <<TOML
listen = "127.0.0.1:18081"
database_url = "sqlite://$work/mep.db?mode=rwc"
[telemetry]
filter = "warn"
[dns]
listen = "127.0.0.1:15353"
[auth]
signing_key = "bench"
[[auth.clients]]
client_id = "op"
client_secret = "op"
scopes = ["mep_mgmt", "mec_service_mgmt", "mec_app_support"]
TOML
target/release/mep -c "$work/mep.toml" >"$work/mep.log" 2>&1 &
mep_pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.1; done
api=http://127.0.0.1:18081
tok=$(curl -s -u op:op -d grant_type=client_credentials $api/oauth2/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
auth=(-H "Authorization: Bearer $tok" -H 'content-type: application/json')
curl -sf -X PUT "${auth[@]}" $api/mep_mgmt/v1/app_instances/bench -d '{"appInfo":{"appName":"bench"}}' >/dev/null
for i in $(seq 10); do
  curl -sf -X POST "${auth[@]}" $api/mec_service_mgmt/v1/applications/bench/services \
    -d "{\"serName\":\"svc-$i\",\"version\":\"1.0\",\"state\":\"ACTIVE\",\"serializer\":\"JSON\",\"transportId\":\"mep-rest-http\"}" >/dev/null
done
sleep 1
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$mep_pid/status)
curl -s "${auth[@]}" $api/mec_service_mgmt/v1/services >"$work/services.json"
size=$(stat -c %s "$work/services.json")

mkdir -p "$work/www" "$work/logs"
cp "$work/services.json" "$work/www/services.json"
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  server { listen 127.0.0.1:18082; root $work/www; }
}
CONF
nginx -p "$work" -c "$work/nginx.conf"

run() { wrk -t2 -c100 -d"${dur}s" --latency "$@" 2>&1; }
echo "== MEP discovery: GET /services, ${size} bytes, 100 connections, ${dur}s"
mep_out=$(run -H "Authorization: Bearer $tok" "$api/mec_service_mgmt/v1/services")
echo "$mep_out" | grep -E "Requests/sec|Latency  | 50%| 99%|Non-2xx" || true
echo "== MEP filtered discovery: GET /services?ser_name=svc-3"
run -H "Authorization: Bearer $tok" "$api/mec_service_mgmt/v1/services?ser_name=svc-3" | grep -E "Requests/sec|Latency  | 99%|Non-2xx" || true
loaded_rss=$(awk '/VmRSS/ {print $2}' /proc/$mep_pid/status)
echo "== nginx: static file of the same size"
nginx_out=$(run http://127.0.0.1:18082/services.json)
echo "$nginx_out" | grep -E "Requests/sec|Latency  | 50%| 99%" || true
m=$(echo "$mep_out" | awk '/Requests\/sec/ {print $2}')
n=$(echo "$nginx_out" | awk '/Requests\/sec/ {print $2}')
echo "== summary"
echo "mep_rps=$m nginx_rps=$n ratio=$(awk "BEGIN {printf \"%.2f\", $m/$n}")"
echo "mep_idle_rss_kib=$idle_rss mep_rss_after_load_kib=$loaded_rss"
