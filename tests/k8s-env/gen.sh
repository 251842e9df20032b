#!/usr/bin/env bash
# Regenerates go.mod/go.sum for a Kubernetes version (run by hand when bumping
# K8S; the result is committed). k8s.io/kubernetes requires its staging modules
# at v0.0.0 and satisfies them with local replaces that a consumer does not
# inherit, so every one of them is replaced here with its published tag.
set -euo pipefail
cd "$(dirname "$0")"
K8S=${K8S:-v1.37.2}
STG="v0${K8S#v1}"
[ -f go.mod ] || go mod init mecplane.invalid/k8s-env
go mod edit -go=1.26.0
gomod=$(go mod download -json "k8s.io/kubernetes@${K8S}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
mods=$( { awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod";
          grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}'; } | sort -u)
for m in $mods; do go mod edit -replace="${m}=${m}@${STG}"; done
go mod edit -require="k8s.io/kubernetes@${K8S}"
for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  go mod edit -tool="k8s.io/kubernetes/cmd/${t}"
done
go mod tidy
echo "replaced $(echo $mods | wc -w) staging modules"
