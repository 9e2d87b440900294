# Rotor's build. `make dev` runs the local multi-cluster sandbox with the
# sample workflows; `make test` runs every test, e2e included.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/e2e')

.PHONY: all tools generate verify-generate build test unit e2e dev dev-down lint fuzz bench bench-harness clean

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

## build: build rotor, rotor-propeller and rotor-nodeagent into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: every test: unit (with the race detector) and e2e on real apiservers
## (e2e packages one at a time: their timing goals assume the machine to themselves)
test: tools build
	$(GO) test -race -count=1 $(UNIT_PKGS)
	$(GO) test -count=1 -p 1 -timeout 20m ./e2e/...

## unit: unit tests only (no binaries needed)
unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

## e2e: end-to-end tests only
e2e: tools build
	$(GO) test -count=1 -p 1 -timeout 20m -v ./e2e/...

## dev: start the sandbox in the background and run every example in docs/examples
dev: tools build
	-./bin/rotor dev down >/dev/null 2>&1
	./bin/rotor dev up --detach
	./hack/run-examples.sh
	@echo; echo "the sandbox is still running: 'bin/rotor dev status', 'bin/rotor dev down'"

## dev-down: stop the sandbox
dev-down:
	./bin/rotor dev down

## lint: gofmt, go vet and staticcheck
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck $$($(GO) list ./... | grep -v /controller/generated/)

## fuzz: run each fuzz target for FUZZTIME (default 60s)
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./controller/template -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./controller/dag -run '^$$' -fuzz '^FuzzBuild$$' -fuzztime $(FUZZTIME)
	$(GO) test ./controller/expr -run '^$$' -fuzz '^FuzzExpr$$' -fuzztime $(FUZZTIME)

## bench: the benchmark suite on the kwok runtime: ceiling, throughput with
## 1/2/4 replicas, orchestration overhead, replica memory, failover times;
## prints every figure beside its reference and writes .rotor/bench/*.json
bench: tools build
	$(GO) run ./e2e/cmd/bench

## bench-harness: time the e2e harness start-up (median of 5)
bench-harness: tools build
	$(GO) run ./e2e/cmd/harness-startup -runs 5

clean:
	rm -rf $(BIN) .rotor
