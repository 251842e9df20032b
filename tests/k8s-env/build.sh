#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kwok and helm (the K3s helm-controller's installer) from Go modules, once: the binaries are cached under
# ${MECPLANE_K8S_CACHE:-~/.cache/mecplane-k8s-env}/<hash of go.mod+go.sum+this script>/bin.
# kwok's stage definitions (fake node and pod life cycle) come from its module
# as bin/kwok-stages.yaml. Prints the bin directory on stdout.
set -euo pipefail
cd "$(dirname "$0")"
K8S=$(awk '$1 == "k8s.io/kubernetes" {print $2}' go.mod)
KWOK=$(awk '$1 == "sigs.k8s.io/kwok" {print $2}' go.mod)
HELM=$(awk '$1 == "helm.sh/helm/v3" {print $2}' go.mod)
key=$(cat go.mod go.sum build.sh cmd/etcd/main.go | sha256sum | cut -c1-16)
out=${MECPLANE_K8S_CACHE:-$HOME/.cache/mecplane-k8s-env}/$key
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm kwok-stages.yaml)
ready=1
for b in "${bins[@]}"; do [ -e "$out/bin/$b" ] || ready=0; done
if [ "$ready" = 1 ]; then echo "$out/bin"; exit 0; fi

start=$(date +%s)
MIN=$(echo "$K8S" | cut -d. -f2)
V=""
# The version variables kube::version::ldflags sets; without them /version
# reports v0.0.0-master.
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  V="$V -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MIN -X $p.gitTreeState=clean"
done
V="$V -X helm.sh/helm/v3/internal/version.version=$HELM"
mkdir -p "$out/tmp"
export CGO_ENABLED=0
# one build of one module graph (kwok and helm are tools of go.mod, on the same k8s.io
# libraries): the packages they share with the cluster are compiled once, not three times
go build -trimpath -ldflags "-s -w $V" -o "$out/tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./cmd/etcd \
  sigs.k8s.io/kwok/cmd/kwok helm.sh/helm/v3/cmd/helm >&2
stages=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK/kustomize/stage
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  echo "---"; cat "$stages/$f"
done > "$out/tmp/kwok-stages.yaml"
rm -rf "$out/bin"
mv "$out/tmp" "$out/bin"
echo "k8s-env: built ${bins[*]} ($K8S, kwok $KWOK, helm $HELM) in $(( $(date +%s) - start )) s" >&2
echo "$out/bin"
