#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules into a cache folder
# keyed by versions, outside the work tree. Skips what is already built.
# Prints the folder on the last line of stdout; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.14}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"
HELM_VERSION="${HELM_VERSION:-3.22.0}"
CNI_VERSION="${CNI_VERSION:-1.10.0}"
CRANE_VERSION="${CRANE_VERSION:-0.22.1}"

CACHE_ROOT="${SCALESET_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaleset-operator}"
BIN="$CACHE_ROOT/testbin-k8s${K8S_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}"
SRC="$CACHE_ROOT/src"
# Real nodes (kubelet, CNI plugins, a registry) have a folder of their own, so that a cluster of
# simulated nodes never waits for them.
NODEBIN="$CACHE_ROOT/nodebin-k8s${K8S_VERSION}-cni${CNI_VERSION}-crane${CRANE_VERSION}"

say() { printf '[testbin] %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  say "error: Go is not installed (needed to build kube-apiserver, etcd, kwok and helm)."
  say "Install Go >= 1.26 (https://go.dev/dl/) or point KUBEBUILDER_ASSETS / TEST_ASSET_<NAME> at existing binaries."
  exit 1
fi

mkdir -p "$BIN" "$SRC"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
started=$(date +%s)

have() { [[ -x "$BIN/$1" ]]; }

# The module folder from which every k8s.io/kubernetes command is built.
prepare_k8s_module() {
  local stg="0.${K8S_VERSION#1.}" dir="$SRC/k8s-$K8S_VERSION"
  if [[ -f "$dir/.prepared" ]]; then cd "$dir"; return; fi
  say "kubernetes v$K8S_VERSION: preparing module (staging modules at v$stg)"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  printf 'module scaleset.dev/k8sbin\n\ngo 1.26.0\n\ngodebug default=go1.26\n' > go.mod
  local kmod
  kmod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them to local folders;
  # a consumer must map each one to its published tag instead.
  for m in $(sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*|\1|p' "$kmod"); do
    go mod edit -replace="$m=$m@v$stg"
  done
  go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
  say "kubernetes v$K8S_VERSION: resolving dependencies"
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubelet@v$K8S_VERSION" >&2
  go mod tidy >&2
  touch .prepared
}

k8s_ldflags() {
  local minor ldf="-s -w"
  minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "$ldf"
}

build_k8s() {
  if have kube-apiserver && have kube-controller-manager && have kube-scheduler && have kubectl; then
    say "kubernetes v$K8S_VERSION: cached"; return
  fi
  prepare_k8s_module
  local ldf; ldf=$(k8s_ldflags)
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    say "kubernetes v$K8S_VERSION: building $cmd ($(( $(date +%s) - started ))s elapsed)"
    go build -trimpath -ldflags "$ldf" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
  done
}

# kubelet, the CNI plugins a node's bridge network needs, and crane (a registry and an image
# builder that need no container engine).
build_node() {
  mkdir -p "$NODEBIN"
  if [[ ! -x "$NODEBIN/kubelet" ]]; then
    prepare_k8s_module
    local ldf; ldf=$(k8s_ldflags)
    say "kubelet v$K8S_VERSION: building ($(( $(date +%s) - started ))s elapsed)"
    go build -trimpath -ldflags "$ldf" -o "$NODEBIN/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
    mv "$NODEBIN/kubelet.tmp" "$NODEBIN/kubelet"
  else
    say "kubelet v$K8S_VERSION: cached"
  fi
  local cni
  for cni in main/bridge main/loopback ipam/host-local; do
    local name="${cni#*/}"
    if [[ -x "$NODEBIN/cni/$name" ]]; then continue; fi
    say "CNI plugin $name v$CNI_VERSION: building"
    mkdir -p "$NODEBIN/cni"
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
      "github.com/containernetworking/plugins/plugins/$cni@v$CNI_VERSION"
    mv "$tmp/$name" "$NODEBIN/cni/$name"; rm -rf "$tmp"
  done
  if [[ ! -x "$NODEBIN/crane" ]]; then
    say "crane v$CRANE_VERSION: building"
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
      "github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION"
    mv "$tmp/crane" "$NODEBIN/crane"; rm -rf "$tmp"
  fi
}

build_etcd() {
  if have etcd; then say "etcd v$ETCD_VERSION: cached"; return; fi
  local dir="$SRC/etcd-$ETCD_VERSION"
  say "etcd v$ETCD_VERSION: building"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  printf 'module scaleset.dev/etcdbin\n\ngo 1.26.0\n' > go.mod
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

build_kwok() {
  if have kwok; then say "kwok v$KWOK_VERSION: cached"; return; fi
  say "kwok v$KWOK_VERSION: building"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  mv "$tmp/kwok" "$BIN/kwok"; rm -rf "$tmp"
}

build_helm() {
  if have helm; then say "helm v$HELM_VERSION: cached"; return; fi
  say "helm v$HELM_VERSION: building"
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mv "$tmp/helm" "$BIN/helm"; rm -rf "$tmp"
}

want="${*:-etcd kwok helm k8s}"
for part in $want; do
  case "$part" in
    k8s) build_k8s ;; etcd) build_etcd ;; kwok) build_kwok ;; helm) build_helm ;;
    node) build_node ;;
    *) say "unknown part: $part"; exit 2 ;;
  esac
done
if [[ " $want " == *" node "* ]]; then
  say "done in $(( $(date +%s) - started ))s: $NODEBIN"
  echo "$NODEBIN"
else
  say "done in $(( $(date +%s) - started ))s: $BIN"
  echo "$BIN"
fi
