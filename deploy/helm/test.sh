#!/usr/bin/env bash
# Proves the mecplane chart against a test cluster of tests/k8s-env (MECPLANE_K8S_ENV, the
# `kubernetes` flavour): helm lint; helm template with the defaults and with every optional part
# on, validated by kubeconform at strict schema against JSON schemas made from that cluster's own
# OpenAPI (the prometheus-operator ServiceMonitor CRD, generated from its Go types with
# controller-gen, is applied first); wrong values refused by values.schema.json; then helm
# install into a fresh namespace, where the objects are created and both Deployments become
# available on the fake (kwok) nodes; helm uninstall.
#   deploy/helm/test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
chart=$here/mecplane
env_dir=${MECPLANE_K8S_ENV:?MECPLANE_K8S_ENV: a tests/k8s-env state directory}
bin=$(awk -F= '$1 == "K8S_ENV_BIN" {print $2}' "$env_dir/env")
kc=$env_dir/kubernetes.kubeconfig
helm() { "$bin/helm" --kubeconfig "$kc" "$@"; }
kubectl() { "$bin/kubectl" --kubeconfig "$kc" "$@"; }
kubeconform=$("$here/../../scripts/go-tool.sh" github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0)
controller_gen=$("$here/../../scripts/go-tool.sh" sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0)
version=$(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"].lstrip("v"))')
work=$(mktemp -d /tmp/mecplane-helm.XXXXXX)
ns=mecplane-chart-$$
cleanup() {
  helm uninstall mecplane -n "$ns" --wait >/dev/null 2>&1 || true
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "helm: the ServiceMonitor CRD from prometheus-operator's API types (controller-gen)"
mkdir -p "$work/crdgen"
printf 'module crdgen\n\ngo 1.24\n\nrequire github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring v0.95.2\n' > "$work/crdgen/go.mod"
printf 'package crdgen\n\nimport _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"\n' > "$work/crdgen/tools.go"
(cd "$work/crdgen" && go mod tidy >&2 &&
  "$controller_gen" crd:allowDangerousTypes=true \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir=out)
kubectl apply --server-side -f "$work/crdgen/out/monitoring.coreos.com_servicemonitors.yaml" >/dev/null
kubectl wait --for=condition=Established crd/servicemonitors.monitoring.coreos.com --timeout=60s >/dev/null

echo "helm: lint"
helm lint --strict "$chart" --kube-version "$version"

echo "helm: template | kubeconform -strict (schemas of kube-apiserver $version)"
kubectl get --raw /openapi/v2 > "$work/openapi.json"
python3 "$here/../../tests/k8s-env/json-schemas.py" "$work/openapi.json" "$work/schemas"
object_storage=(--set meao.replicas=2 --set meao.objectStorage.enabled=true
  --set meao.objectStorage.bucket=mecplane-packages --set meao.objectStorage.endpoint=https://s3.example:9000
  --set meao.objectStorage.existingSecret=meao-s3)
all_on=(--set meao.serviceMonitor.enabled=true --set meao.networkPolicy.enabled=true
  --set 'meao.networkPolicy.apiFrom[0].namespaceSelector.matchLabels.team=oss'
  --set mep.serviceMonitor.enabled=true --set mep.networkPolicy.enabled=true
  --set mep.upf.pfcpAddress=10.0.0.20:8805 --set mep.database.existingSecret=mep-database
  --set mep.dns.upstream=10.0.0.53:53 --set meao.persistence.existingClaim=meao-packages
  "${object_storage[@]}")
for variant in defaults all-on; do
  extra=(); [ "$variant" = all-on ] && extra=("${all_on[@]}")
  helm template mecplane "$chart" --kube-version "$version" "${extra[@]}" > "$work/$variant.yaml"
  "$kubeconform" -strict -summary -schema-location "$work/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$work/$variant.yaml"
done
grep -q "kind: ServiceMonitor" "$work/all-on.yaml" && grep -q "kind: NetworkPolicy" "$work/all-on.yaml"
grep -q "MEAO__PACKAGE_STORAGE__KIND" "$work/all-on.yaml" && grep -q "AWS_SECRET_ACCESS_KEY" "$work/all-on.yaml"

echo "helm: wrong values fail at install"
for wrong in meao.replicas=0 meao.colour=red mep.upf.pfcpAddress=upf.example mep.meao.url=http://meao \
             meao.objectStorage.enabled=true meao.objectStorage.bucket=Not_A_Bucket meao.replicas=2; do
  if helm template mecplane "$chart" --kube-version "$version" --set "$wrong" >/dev/null 2>"$work/err"; then
    echo "helm: --set $wrong was accepted" >&2; exit 1
  fi
  echo "  refused: $wrong ($(grep -m1 -e "at '" -e "needs package storage" "$work/err" | sed 's/^ *- //'))"
done

echo "helm: install into namespace $ns"
kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" create secret generic meao-database --from-literal=url=postgres://meao:secret@postgres/meao >/dev/null
for s in meao-auth mep-auth; do
  kubectl -n "$ns" create secret generic "$s" --from-literal=signing-key="$(openssl rand -hex 16)" \
    --from-literal=clients='[{client_id="oss",client_secret="oss-secret",scopes=["app_pkgm"]}]' >/dev/null
done
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/tls.key" -out "$work/tls.crt" -days 1 \
  -subj /CN=paris-1 2>/dev/null
for s in meao-mep-link-tls mep-link-tls; do
  kubectl -n "$ns" create secret generic "$s" --type kubernetes.io/tls --from-file=tls.crt="$work/tls.crt" \
    --from-file=tls.key="$work/tls.key" --from-file=ca.crt="$work/tls.crt" >/dev/null
done
kubectl -n "$ns" create secret generic meao-s3 --from-literal=access-key-id=mecplane \
  --from-literal=secret-access-key="$(openssl rand -hex 16)" >/dev/null
helm install mecplane "$chart" -n "$ns" --wait --timeout 5m \
  --set meao.serviceMonitor.enabled=true --set meao.networkPolicy.enabled=true "${object_storage[@]}"
kubectl -n "$ns" get deployments,services,poddisruptionbudgets,servicemonitors,networkpolicies,configmaps -o name
for d in mecplane-meao mecplane-mep; do
  kubectl -n "$ns" wait --for=condition=Available "deployment/$d" --timeout=120s
done
ready=$(kubectl -n "$ns" get deployment mecplane-meao -o jsonpath='{.status.availableReplicas}/{.spec.replicas}')
[ "$ready" = 2/2 ] || { echo "helm: MEAO replicas available: $ready" >&2; exit 1; }
echo "helm: installed; MEAO $ready available, MEP available, on nodes $(kubectl -n "$ns" get pods -o jsonpath='{.items[*].spec.nodeName}')"
