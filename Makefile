# Rotor's build. `make dev` runs the local multi-cluster sandbox with the
# sample workflows; `make test` runs every test, e2e included.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/e2e')

.PHONY: all tools generate verify-generate build image image-verify test unit e2e dev dev-chart dev-down lint fuzz bench bench-harness clean

all: build

## tools: build etcd, kube-apiserver, kube-scheduler, kwok, generators and linter into ./bin (incremental)
tools:
	./hack/tools.sh

## generate: regenerate deepcopy, clientset, listers, informers and CRD YAML
generate: tools
	./hack/update-codegen.sh

## verify-generate: fail if generated files differ from a fresh regeneration
verify-generate: generate
	@if [[ -n "$$(git status --porcelain -- controller charts manager/adminpb)" ]]; then \
	  git status --porcelain -- controller charts manager/adminpb; git diff --stat -- controller charts manager/adminpb; \
	  echo "generated files are stale: run 'make generate' and commit"; exit 1; fi
	@echo "generated files are up to date"

## build: build rotor, rotor-propeller, rotor-manager, rotor-data, rotor-nodeagent and rotor-registry into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## image: cross-compile rotor-manager, rotor-propeller, rotor and rotor-data for linux/amd64
## and linux/arm64 into bin/linux_<arch>/ and build their OCI images, without
## Docker, into the layout bin/images; prints each digest. IMAGE_FLAGS adds
## flags of hack/image, e.g. IMAGE_FLAGS='-push 127.0.0.1:5000'
image:
	GO="$(GO)" $(GO) run ./hack/image $(IMAGE_FLAGS)

## image-verify: build the images twice into temporary layouts and fail if any digest differs
image-verify:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for run in a b; do GO="$(GO)" $(GO) run ./hack/image -out "$$tmp/$$run" $(IMAGE_FLAGS) >"$$tmp/$$run.txt"; done; \
	if ! diff "$$tmp/a.txt" "$$tmp/b.txt"; then echo "image digests differ between two builds of one tree"; exit 1; fi; \
	cat "$$tmp/a.txt"; echo "images are reproducible"

## test: every test: unit (with the race detector) and e2e on real apiservers
## (e2e packages one at a time: their timing goals assume the machine to themselves)
test: tools build image
	$(GO) test -race -count=1 $(UNIT_PKGS)
	$(GO) test -count=1 -p 1 -timeout 20m ./e2e/...

## unit: unit tests only (no binaries needed)
unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

## e2e: end-to-end tests only
e2e: tools build image
	$(GO) test -count=1 -p 1 -timeout 20m -v ./e2e/...

## dev: start the sandbox in the background and run every example in docs/examples
dev: tools build
	-./bin/rotor dev down >/dev/null 2>&1
	./bin/rotor dev up --detach
	./hack/run-examples.sh
	@echo; echo "the sandbox is still running: 'bin/rotor dev status', 'bin/rotor dev down'"

## dev-chart: the sandbox with Rotor installed by its Helm chart (images from
## a sandbox registry, pods run by the node agents), then every example
dev-chart: tools build image
	-./bin/rotor dev down >/dev/null 2>&1
	./bin/rotor dev up --detach --install chart --replicas 3
	ROTOR_EXAMPLES_WITHOUT=data-plane ./hack/run-examples.sh
	@echo; echo "the sandbox is still running: 'bin/rotor dev status', 'bin/rotor dev down'"

## dev-down: stop the sandbox
dev-down:
	./bin/rotor dev down

## lint: gofmt, go vet, staticcheck, and helm lint/template of the charts
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck $$($(GO) list ./... | grep -v /controller/generated/)
	./hack/helm-check.sh

## fuzz: run each fuzz target for FUZZTIME (default 60s)
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./controller/template -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./controller/dag -run '^$$' -fuzz '^FuzzBuild$$' -fuzztime $(FUZZTIME)
	$(GO) test ./controller/expr -run '^$$' -fuzz '^FuzzExpr$$' -fuzztime $(FUZZTIME)
	$(GO) test ./manager/admission -run '^$$' -fuzz '^FuzzReview$$' -fuzztime $(FUZZTIME)

## bench: the benchmark suite on the kwok runtime: ceiling, throughput with
## 1/2/4 replicas, orchestration overhead, replica memory, failover times;
## prints every figure beside its reference and writes .rotor/bench/*.json
bench: tools build
	$(GO) run ./e2e/cmd/bench

## chaos: the chaos soak on the kwok runtime: a mixed load for
## CHAOS_DURATION (default 10m) while replicas, managers, target and
## control apiservers and etcd are killed, frozen and restarted on a
## schedule drawn from CHAOS_SEED (default: from the clock; printed);
## fails unless every workflow ended as expected, no attempt had two
## pods, no pod was orphaned, no http call was repeated under one key and
## memory stayed bounded
CHAOS_DURATION ?= 10m
CHAOS_SEED ?=
CHAOS_ARGS ?=
.PHONY: chaos
chaos: tools build
	$(GO) run ./e2e/cmd/chaos -duration $(CHAOS_DURATION) $(if $(CHAOS_SEED),-seed $(CHAOS_SEED)) $(CHAOS_ARGS)

## bench-harness: time the e2e harness start-up (median of 5)
bench-harness: tools build
	$(GO) run ./e2e/cmd/harness-startup -runs 5

clean:
	rm -rf $(BIN) .rotor
