#!/usr/bin/env bash
# Discovery benchmark: GET /mec_service_mgmt/v1/services on a release MEP (OAuth on, SQLite) under
# wrk with 100 connections, beside nginx serving a static file of the same bytes on the same
# machine, interleaved (MEP, nginx, MEP, nginx, ...) for `rounds` rounds. Cases: the unfiltered
# list of 10 services, then with 1,000 registered the unfiltered list, a ser_name filter, a
# ser_category_id filter and an is_local filter. Prints each run, then per case the median
# requests/s and p99 of both, the ratio MEP/nginx, and the MEP's VmRSS and VmHWM (idle, with 10
# and with 1,000 services).
# Usage: scripts/bench-discovery.sh [duration_secs] [rounds]; BENCH_PORT (18080) is the first of
# the three local ports it uses; MEP_BIN runs that binary instead of a release build of main.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
rounds=${2:-3}
port=${BENCH_PORT:-18080}
api=http://127.0.0.1:$((port + 1))
nginx_url=http://127.0.0.1:$((port + 2))
for tool in wrk nginx; do
  command -v $tool >/dev/null || { echo "installing $tool"; apt-get install -y --no-install-recommends wrk nginx-light >/dev/null; }
done
if [ -z "${MEP_BIN:-}" ]; then
  cargo build --release -p mep --locked >/dev/null 2>&1
  MEP_BIN=${CARGO_TARGET_DIR:-target}/release/mep
fi
work=$(mktemp -d /tmp/mep-bench.XXXXXX)
cleanup() { kill "${mep_pid:-}" 2>/dev/null || true; nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/mep.toml" <<TOML
listen = "127.0.0.1:$((port + 1))"
database_url = "sqlite://$work/mep.db?mode=rwc"
[telemetry]
filter = "warn"
[dns]
listen = "127.0.0.1:$((port + 3))"
[auth]
signing_key = "bench"
[[auth.clients]]
client_id = "op"
client_secret = "op"
scopes = ["mep_mgmt", "mec_service_mgmt", "mec_app_support"]
TOML
"$MEP_BIN" -c "$work/mep.toml" >"$work/mep.log" 2>&1 &
mep_pid=$!
for _ in $(seq 50); do curl -sf $api/healthz >/dev/null && break; sleep 0.1; done
tok=$(curl -s -u op:op -d grant_type=client_credentials $api/oauth2/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
auth=(-H "Authorization: Bearer $tok" -H 'content-type: application/json')
rss() { awk '/VmRSS|VmHWM/ {printf "%s%s ", $1, $2}' /proc/$mep_pid/status; }
sleep 1
idle=$(rss)
curl -sf -X PUT "${auth[@]}" $api/mep_mgmt/v1/app_instances/bench -d '{"appInfo":{"appName":"bench"}}' >/dev/null
register() { # services $1..$2 in one curl run: ten categories, one in ten remote
  for i in $(seq "$1" "$2"); do
    local_=$([ $((i % 10)) = 0 ] && echo false || echo true)
    [ "$i" = "$1" ] || echo next
    cat <<CFG
url = "$api/mec_service_mgmt/v1/applications/bench/services"
header = "Authorization: Bearer $tok"
header = "content-type: application/json"
data = "{\\"serName\\":\\"svc-$i\\",\\"serCategory\\":{\\"href\\":\\"http://catalogue\\",\\"id\\":\\"cat-$((i % 10))\\",\\"name\\":\\"c\\",\\"version\\":\\"1\\"},\\"version\\":\\"1.0\\",\\"state\\":\\"ACTIVE\\",\\"serializer\\":\\"JSON\\",\\"isLocal\\":$local_,\\"transportId\\":\\"mep-rest-http\\"}"
fail
silent
output = "/dev/null"
CFG
  done >"$work/curl.cfg"
  curl -K "$work/curl.cfg"
}

mkdir -p "$work/www" "$work/logs"
# nginx started as root serves as `nobody`, which mktemp's 0700 directory shuts out (every
# answer was then a 403 page of 153 bytes); each case below checks nginx sends its file
chmod 755 "$work" "$work/www"
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  server { listen 127.0.0.1:$((port + 2)); root $work/www; }
}
CONF
nginx -p "$work" -c "$work/nginx.conf"

wrk_run() { wrk -t2 -c100 -d"${dur}s" --latency "$@" 2>&1; }
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}'; }
non2xx() { awk '/Non-2xx/ {print $NF}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
summary=()
# bench NAME QUERY: the MEP's answer to QUERY beside nginx serving the same bytes, interleaved
bench() {
  local name=$1 query=$2 file="$work/www/$1.json"
  curl -sf -H "Authorization: Bearer $tok" "$api/mec_service_mgmt/v1/services$query" >"$file"
  local size count m_rps="" n_rps="" m_p99="" n_p99="" out
  size=$(stat -c %s "$file")
  chmod 644 "$file"
  cmp -s "$file" <(curl -sf "$nginx_url/$name.json") || { echo "nginx does not serve $file"; exit 1; }
  count=$(grep -o '"serInstanceId"' "$file" | wc -l)
  echo "== $name: GET /services$query ($count services, $size bytes), 100 connections, ${dur}s x $rounds"
  for r in $(seq "$rounds"); do
    out=$(wrk_run -H "Authorization: Bearer $tok" "$api/mec_service_mgmt/v1/services$query")
    [ -z "$(echo "$out" | non2xx)" ] || { echo "MEP answered errors:"; echo "$out"; exit 1; }
    m_rps+=" $(echo "$out" | rps)"; m_p99+=" $(echo "$out" | p99)"
    echo "  round $r mep:   $(echo "$out" | rps) rps, p99 $(echo "$out" | p99) ms"
    out=$(wrk_run "$nginx_url/$name.json")
    [ -z "$(echo "$out" | non2xx)" ] || { echo "nginx answered errors:"; echo "$out"; exit 1; }
    n_rps+=" $(echo "$out" | rps)"; n_p99+=" $(echo "$out" | p99)"
    echo "  round $r nginx: $(echo "$out" | rps) rps, p99 $(echo "$out" | p99) ms"
  done
  local m n
  m=$(echo "$m_rps" | median); n=$(echo "$n_rps" | median)
  summary+=("$(printf '%-22s mep_rps=%-9s nginx_rps=%-9s ratio=%s mep_p99_ms=%s nginx_p99_ms=%s' "$name" "$m" "$n" \
    "$(awk "BEGIN {printf \"%.2f\", $m/$n}")" "$(echo "$m_p99" | median)" "$(echo "$n_p99" | median)")")
}

register 1 10
sleep 1
with10=$(rss)
bench list-10 ""
register 11 1000
sleep 1
with1000=$(rss)
bench list-1000 ""
bench name-1000 "?ser_name=svc-500"
bench category-1000 "?ser_category_id=cat-3"
bench remote-1000 "?is_local=false"
echo "== summary (medians of $rounds interleaved rounds)"
printf '%s\n' "${summary[@]}"
echo "mep memory (kB): idle: $idle| 10 services: $with10| 1,000 services: $with1000| after the runs: $(rss)"
