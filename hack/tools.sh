#!/usr/bin/env bash
# Builds the real Kubernetes parts and the code generators into ./bin from
# the Go module proxy. Incremental: a tool is rebuilt only when its tools
# module (go.mod + go.sum) changed since it was last built, which a stamp
# file next to the binary records.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/bin
mkdir -p "$BIN/.stamps"

K8S_VERSION=$(cd hack/tools/kube && go list -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
KUBE_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$K8S_MINOR -X k8s.io/component-base/version.gitTreeState=clean"

# build MODULE_DIR LDFLAGS BINARY=PACKAGE...
build() {
  local dir=$1 ldflags=$2; shift 2
  local stamp want missing=()
  # The stamp covers the module's pins and the link flags (the version the
  # binary reports), so a change to either rebuilds.
  want=$( (cat "$dir/go.mod" "$dir/go.sum"; echo "$ldflags") | sha256sum | cut -c1-16)
  for spec in "$@"; do
    local name=${spec%%=*}
    stamp=$BIN/.stamps/$name
    if [[ -x $BIN/$name && -f $stamp && $(cat "$stamp") == "$want" ]]; then
      echo "tools: $name is up to date ($(basename "$dir") $want)"
    else
      missing+=("$spec")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  for spec in "${missing[@]}"; do
    local name=${spec%%=*} pkg=${spec#*=}
    echo "tools: building $name from $pkg"
    local start=$SECONDS
    (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$BIN/$name" "$pkg")
    echo "$want" > "$BIN/.stamps/$name"
    echo "tools: built $name in $((SECONDS - start))s"
  done
}

build hack/tools/gen "-s -w" \
  controller-gen=sigs.k8s.io/controller-tools/cmd/controller-gen \
  client-gen=k8s.io/code-generator/cmd/client-gen \
  lister-gen=k8s.io/code-generator/cmd/lister-gen \
  informer-gen=k8s.io/code-generator/cmd/informer-gen \
  staticcheck=honnef.co/go/tools/cmd/staticcheck
build hack/tools/proto "-s -w" \
  buf=github.com/bufbuild/buf/cmd/buf \
  protoc-gen-go=google.golang.org/protobuf/cmd/protoc-gen-go \
  protoc-gen-go-grpc=google.golang.org/grpc/cmd/protoc-gen-go-grpc
build hack/tools/etcd "-s -w" etcd=./cmd/etcd
build hack/tools/kwok "-s -w" kwok=sigs.k8s.io/kwok/cmd/kwok
build hack/tools/helm "-s -w" helm=helm.sh/helm/v3/cmd/helm
build hack/tools/seaweedfs "-s -w" weed=github.com/seaweedfs/seaweedfs/weed
build hack/tools/kube "$KUBE_LDFLAGS" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager

# An apiserver without a proper version string panics at start-up (its
# metrics registry parses it): check what was built.
if ! "$BIN/kube-apiserver" --version | grep -qx "Kubernetes $K8S_VERSION"; then
  echo "tools: $BIN/kube-apiserver reports '$("$BIN/kube-apiserver" --version)', want 'Kubernetes $K8S_VERSION'" >&2
  exit 1
fi
