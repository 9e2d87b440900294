#!/usr/bin/env bash
# Lints and renders charts/rotor and charts/rotor-target with bin/helm:
# both charts' default values must lint, rotor-target's must render, and
# every charts/*/ci/*-values.yaml must lint and render (rotor's defaults
# alone do not render: a sharded install needs etcd.endpoints, so
# ci/minimal-values.yaml is the defaults plus that one value); every
# charts/rotor/ci/bad/*.yaml must fail with the message its first line
# names ("# expect: MESSAGE"), ci/bad/defaults-without-etcd.yaml being the
# defaults alone. Needs no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=${HELM:-bin/helm}
[[ -x $HELM ]] || { echo "helm-check: $HELM missing: run ./hack/tools.sh" >&2; exit 1; }

failed=0
fail() { echo "helm-check: FAIL: $*" >&2; failed=1; }

# lint CHART [VALUES]: lint --strict must succeed.
lint() {
  local chart=$1 values=${2:-} args=() out
  [[ -n $values ]] && args=(-f "$values")
  if ! out=$("$HELM" lint --strict "$chart" "${args[@]}" 2>&1); then
    fail "lint $chart${values:+ with $values}"; echo "$out" >&2; return 1
  fi
}

# good CHART [VALUES]: lint --strict and template must both succeed.
good() {
  local chart=$1 values=${2:-} args=() out
  [[ -n $values ]] && args=(-f "$values")
  local what="$chart${values:+ with $values}"
  lint "$chart" "$values" || return 0
  if ! out=$("$HELM" template rotor "$chart" --namespace rotor-system "${args[@]}" 2>&1 >/dev/null); then
    fail "template $what"; echo "$out" >&2; return
  fi
  echo "helm-check: ok   $what"
}

# bad CHART VALUES: template must fail, with the expected message.
bad() {
  local chart=$1 values=$2 want out
  want=$(sed -n '1s/^# expect: //p' "$values")
  [[ -n $want ]] || { fail "$values: first line must be '# expect: MESSAGE'"; return; }
  if out=$("$HELM" template rotor "$chart" --namespace rotor-system -f "$values" 2>&1 >/dev/null); then
    fail "$values: rendered, want an error containing: $want"; return
  fi
  if [[ $out != *"$want"* ]]; then
    fail "$values: wrong error"; echo "  want: $want" >&2; echo "  got:  $out" >&2; return
  fi
  echo "helm-check: ok   $values fails: $want"
}

lint charts/rotor && echo "helm-check: ok   charts/rotor (lint)"
good charts/rotor-target
for chart in charts/rotor charts/rotor-target; do
  for values in "$chart"/ci/*-values.yaml; do
    [[ -e $values ]] && good "$chart" "$values"
  done
done
for values in charts/rotor/ci/bad/*.yaml; do
  bad charts/rotor "$values"
done
exit $failed
