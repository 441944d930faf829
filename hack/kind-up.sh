#!/usr/bin/env bash
# The operator in a kind cluster: create the cluster (kind-config.yaml), build the image, load
# it into the nodes, install the chart into a namespace enforcing the `restricted` Pod Security
# Standard, then create the example scale set with two image versions kind's nodes can pull.
# Needs docker, kind, kubectl and helm on PATH. Safe to run again: it reuses the cluster and
# upgrades the release.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER:-scaleset}
NAMESPACE=${NAMESPACE:-scaleset-system}
TAG=$(awk -F'"' '/^appVersion:/ {print $2}' charts/scaleset-operator/Chart.yaml)
IMAGE=scaleset-operator:${TAG}
CONTEXT=kind-${CLUSTER}

say() { printf '[kind-up] %s\n' "$*" >&2; }

if kind get clusters | grep -qx "${CLUSTER}"; then
  say "reusing kind cluster ${CLUSTER}"
else
  kind create cluster --name "${CLUSTER}" --config kind-config.yaml
fi

say "building ${IMAGE}"
docker build -t "${IMAGE}" .
kind load docker-image "${IMAGE}" --name "${CLUSTER}"

kubectl --context "${CONTEXT}" create namespace "${NAMESPACE}" --dry-run=client -o yaml \
  | kubectl --context "${CONTEXT}" apply -f -
kubectl --context "${CONTEXT}" label --overwrite namespace "${NAMESPACE}" \
  pod-security.kubernetes.io/enforce=restricted

# The chart installs the CRDs (crds/) on first install.
helm --kube-context "${CONTEXT}" upgrade --install scaleset-operator charts/scaleset-operator \
  --namespace "${NAMESPACE}" \
  --set image.repository=scaleset-operator --set image.tag="${TAG}" \
  --wait --timeout 3m

# examples/ point at a placeholder registry; on kind the instances need images that pull.
kubectl --context "${CONTEXT}" apply -f - <<'YAML'
apiVersion: scaleset.dev/v1alpha1
kind: ImageVersion
metadata:
  name: contoso-webos-2024-1.0.0
spec:
  publisher: contoso
  offer: webos
  sku: "2024"
  version: 1.0.0
  image: docker.io/library/nginx:1.26-alpine
YAML
kubectl --context "${CONTEXT}" apply -f examples/scaleset-web.yaml

say "done. Publish a newer version and watch the upgrade (docs/kind.md):"
say "  kubectl scaleset rolling-upgrade watch web"
