#!/usr/bin/env bash
# Regenerates every generated file: deepcopy functions and CRD YAML
# (controller-gen), and the typed clientset, listers and informers
# (k8s code-generator). CI runs it and fails on any diff.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/bin"
MOD=github.com/rotor-dev/rotor
API=$MOD/controller/apis/rotor/v1alpha1
OUT=controller/generated
HDR=hack/boilerplate.go.txt

for t in controller-gen client-gen lister-gen informer-gen buf protoc-gen-go protoc-gen-go-grpc; do
  [[ -x "$BIN/$t" ]] || { echo "missing $BIN/$t: run 'make tools'" >&2; exit 1; }
done

echo "generate: deepcopy and CRDs (controller-gen)"
"$BIN/controller-gen" object:headerFile="$HDR" paths=./controller/apis/...
"$BIN/controller-gen" crd:crdVersions=v1 paths=./controller/apis/... output:crd:dir=charts/rotor/crds

echo "generate: clientset, listers, informers (code-generator)"
rm -rf "$OUT"
"$BIN/client-gen" --go-header-file "$HDR" --clientset-name versioned \
  --input-base "" --input "$API" \
  --output-dir "$OUT/clientset" --output-pkg "$MOD/$OUT/clientset"
"$BIN/lister-gen" --go-header-file "$HDR" \
  --output-dir "$OUT/listers" --output-pkg "$MOD/$OUT/listers" "$API"
"$BIN/informer-gen" --go-header-file "$HDR" \
  --versioned-clientset-package "$MOD/$OUT/clientset/versioned" \
  --listers-package "$MOD/$OUT/listers" \
  --output-dir "$OUT/informers" --output-pkg "$MOD/$OUT/informers" "$API"

echo "generate: admin API (buf, protoc-gen-go, protoc-gen-go-grpc)"
rm -f manager/adminpb/*.pb.go
PATH="$BIN:$PATH" "$BIN/buf" generate
