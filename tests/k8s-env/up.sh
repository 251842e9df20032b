#!/usr/bin/env bash
# Starts independent test clusters on loopback: one etcd, and per cluster a
# kube-apiserver (own etcd prefix, own port), kube-controller-manager,
# kube-scheduler and kwok (fake nodes and pods), then applies its flavour's
# nodes and CRDs from clusters/<flavour>/.
#
#   up.sh STATE_DIR [CLUSTER...]    CLUSTER: FLAVOUR or NAME:FLAVOUR, flavours kubernetes,
#                                   k3s, kubeedge (default: one cluster of each, named so)
#
# Writes STATE_DIR/<name>.kubeconfig, STATE_DIR/env (KUBECONFIG_<NAME>=..., K8S_ENV_BIN=...,
# K8S_ENV_DIR=...) and STATE_DIR/pids; down.sh STATE_DIR stops what it started.
# Ports: MECPLANE_K8S_BASE_PORT (default 26400) and up.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=$(realpath -m "$1"); shift
clusters=("$@"); [ ${#clusters[@]} -gt 0 ] || clusters=(kubernetes k3s kubeedge)
BIN=$("$here/build.sh")
BASE=${MECPLANE_K8S_BASE_PORT:-26400}
start=$(date +%s%N)
mkdir -p "$D/pki" "$D/logs" "$D/cmd"
: > "$D/pids"
: > "$D/env"

P=$D/pki
if [ ! -f "$P/apiserver.crt" ]; then
  (
    cd "$P"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=mecplane-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n" > san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile san.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    token=$(openssl rand -hex 16)
    echo "$token,mecplane-admin,mecplane-admin,\"system:masters\"" > tokens.csv
    echo "$token" > admin.token
  )
fi
token=$(cat "$P/admin.token")

run() { # name, command...: recorded in cmd/<name>.sh so component.sh can restart it
  local name=$1; shift
  { echo '#!/usr/bin/env bash'; printf 'exec'; printf ' %q' "$@"; echo; } > "$D/cmd/$name.sh"
  chmod +x "$D/cmd/$name.sh"
  "$here/component.sh" "$D" start "$name"
}

wait_for() { # what, seconds, command...
  local what=$1 limit=$2 until=$(( $(date +%s) + $2 )); shift 2
  while [ "$(date +%s)" -lt "$until" ]; do
    if "$@" > /dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "k8s-env: $what did not come up in ${limit}s; last log lines:" >&2
  tail -20 "$D/logs/$what.log" >&2 || true
  return 1
}
trap '"$here/down.sh" "$D"' ERR

run etcd "$BIN/etcd" --name=node0 --data-dir="$D/etcd" --unsafe-no-fsync \
  --listen-client-urls="http://127.0.0.1:$BASE" --advertise-client-urls="http://127.0.0.1:$BASE" \
  --listen-peer-urls="http://127.0.0.1:$((BASE + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((BASE + 1))" \
  --initial-cluster="node0=http://127.0.0.1:$((BASE + 1))" --log-level=warn
wait_for etcd 60 curl -sf "http://127.0.0.1:$BASE/health"

i=0
names=()
for cluster in "${clusters[@]}"; do
  name=${cluster%%:*}; flavour=${cluster#*:}
  [ -d "$here/clusters/$flavour" ] || { echo "k8s-env: unknown flavour $flavour" >&2; exit 2; }
  [[ "$name" =~ ^[a-z0-9-]+$ ]] || { echo "k8s-env: bad cluster name $name" >&2; exit 2; }
  names+=("$name")
  echo "$flavour" > "$D/$name.flavour"
  port=$((BASE + 10 + i)); i=$((i + 1))
  kc=$D/$name.kubeconfig
  cat > "$kc" <<KC
apiVersion: v1
kind: Config
clusters: [{name: $name, cluster: {server: "https://127.0.0.1:$port", certificate-authority: "$P/ca.crt"}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: $name, context: {cluster: $name, user: admin}}]
current-context: $name
KC
  run "$name-apiserver" "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$BASE" --etcd-prefix="/registry-$name" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=RBAC --allow-privileged=true \
    --endpoint-reconciler-type=none --enable-priority-and-fairness=false \
    --max-requests-inflight=0 --max-mutating-requests-inflight=0 --v=1
  echo "KUBECONFIG_$(echo "$name" | tr a-z- A-Z_)=$kc" >> "$D/env"
done
echo "K8S_ENV_BIN=$BIN" >> "$D/env"
echo "K8S_ENV_DIR=$D" >> "$D/env"

for name in "${names[@]}"; do
  kc=$D/$name.kubeconfig
  flavour=$(cat "$D/$name.flavour")
  wait_for "$name-apiserver" 120 "$BIN/kubectl" --kubeconfig="$kc" get --raw /readyz
  run "$name-kcm" "$BIN/kube-controller-manager" --kubeconfig="$kc" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0 --root-ca-file="$P/ca.crt" \
    --service-account-private-key-file="$P/sa.key" --use-service-account-credentials=false \
    --kube-api-qps=500 --kube-api-burst=1000
  run "$name-scheduler" "$BIN/kube-scheduler" --kubeconfig="$kc" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0
  run "$name-kwok" "$BIN/kwok" --kubeconfig="$kc" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.0/16 --node-ip=127.0.0.1 --node-lease-duration-seconds=10 \
    --config="$BIN/kwok-stages.yaml"
  "$BIN/kubectl" --kubeconfig="$kc" apply --server-side -f "$here/clusters/$flavour/" > /dev/null
done
for name in "${names[@]}"; do
  kc=$D/$name.kubeconfig
  wait_for "$name-kwok" 60 "$BIN/kubectl" --kubeconfig="$kc" wait --for=condition=Ready node --all --timeout=2s
  wait_for "$name-kcm" 60 "$BIN/kubectl" --kubeconfig="$kc" get serviceaccount default -n default
done
echo "k8s-env: ${clusters[*]} up in $(( ($(date +%s%N) - start) / 1000000 )) ms (state in $D)" >&2
