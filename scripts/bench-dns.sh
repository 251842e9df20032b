#!/usr/bin/env bash
# DNS benchmark: the MEP's DNS server (a release MEP, one READY application instance with an
# ACTIVE DNS rule) beside CoreDNS v1.15.0 (tests/coredns: built from Go modules, the hosts
# plugin answering the same name with the same address), both on loopback UDP, under dnsperf
# (Debian's package) for `secs` seconds, interleaved (MEP, CoreDNS, MEP, ...) for `rounds`
# rounds. Prints each run, then the median queries/s and mean latency of both and the ratio
# MEP/CoreDNS.
# Usage: scripts/bench-dns.sh [secs] [rounds]; BENCH_PORT (18180) is the first of the three
# local ports it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
port=${BENCH_PORT:-18180}
api=http://127.0.0.1:$port
mep_dns=$((port + 1))
coredns_port=$((port + 2))
name=app.bench.test
address=10.1.2.3
command -v dnsperf >/dev/null || { echo "installing dnsperf"; apt-get install -y --no-install-recommends dnsperf >/dev/null; }
cargo build --release -p mep --locked >/dev/null 2>&1
coredns=$(tests/coredns/build.sh)
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d /tmp/dns-bench.XXXXXX)
cleanup() { kill "${mep_pid:-}" "${coredns_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/mep.toml" <<TOML
listen = "127.0.0.1:$port"
database_url = "sqlite://$work/mep.db?mode=rwc"
[telemetry]
filter = "warn"
[dns]
listen = "127.0.0.1:$mep_dns"
[auth]
signing_key = "bench"
[[auth.clients]]
client_id = "op"
client_secret = "op"
scopes = ["mep_mgmt", "mec_app_support"]
TOML
"$target/release/mep" -c "$work/mep.toml" >"$work/mep.log" 2>&1 &
mep_pid=$!
for _ in $(seq 50); do curl -sf "$api/healthz" >/dev/null && break; sleep 0.1; done
tok=$(curl -s -u op:op -d grant_type=client_credentials "$api/oauth2/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
auth=(-H "Authorization: Bearer $tok" -H 'content-type: application/json')
curl -sf -X PUT "${auth[@]}" "$api/mep_mgmt/v1/app_instances/bench" -d "{\"appInfo\":{\"appName\":\"bench\"},
  \"appDNSRule\":[{\"dnsRuleId\":\"main\",\"domainName\":\"$name\",\"ipAddressType\":\"IP_V4\",
  \"ipAddress\":\"$address\",\"ttl\":60,\"state\":\"ACTIVE\"}]}" >/dev/null
curl -sf -X POST "${auth[@]}" "$api/mec_app_support/v1/applications/bench/confirm_ready" \
  -d '{"indication":"READY"}' >/dev/null

cat >"$work/Corefile" <<CORE
.:$coredns_port {
  errors
  hosts {
    $address $name
    ttl 60
  }
}
CORE
(cd "$work" && exec "$coredns" -conf Corefile -quiet) >"$work/coredns.log" 2>&1 &
coredns_pid=$!
echo "$name A" >"$work/queries"

# run PORT: dnsperf against PORT
run() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries" -l "$secs" -c 4 -T 1 -Q 10000000 2>&1
}
qps() { awk '/Queries per second/ {print $4}'; }
latency() { awk '/Average Latency/ {print $4 * 1000}'; }
lost() { awk '/Queries lost/ {print $3}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# both answer the name before the runs
for p in $mep_dns $coredns_port; do
  out=$(dnsperf -s 127.0.0.1 -p "$p" -d "$work/queries" -n 1 2>&1)
  echo "$out" | grep -q 'NOERROR 1 ' || { echo "the server on port $p did not answer $name:"; echo "$out"; cat "$work"/*.log; exit 1; }
done
m_qps="" c_qps="" m_lat="" c_lat=""
echo "== $name A over UDP, dnsperf 4 clients, ${secs}s x $rounds"
for r in $(seq "$rounds"); do
  out=$(run "$mep_dns")
  m_qps+=" $(echo "$out" | qps)"; m_lat+=" $(echo "$out" | latency)"
  echo "  round $r mep:     $(echo "$out" | qps) qps, mean latency $(echo "$out" | latency) ms, lost $(echo "$out" | lost)"
  out=$(run "$coredns_port")
  c_qps+=" $(echo "$out" | qps)"; c_lat+=" $(echo "$out" | latency)"
  echo "  round $r coredns: $(echo "$out" | qps) qps, mean latency $(echo "$out" | latency) ms, lost $(echo "$out" | lost)"
done
m=$(echo "$m_qps" | median); c=$(echo "$c_qps" | median)
echo "== summary (medians of $rounds interleaved rounds)"
printf 'mep_qps=%s coredns_qps=%s ratio=%s mep_latency_ms=%s coredns_latency_ms=%s\n' "$m" "$c" \
  "$(awk "BEGIN {printf \"%.2f\", $m/$c}")" "$(echo "$m_lat" | median)" "$(echo "$c_lat" | median)"
