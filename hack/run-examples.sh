#!/usr/bin/env bash
# Submits every example in docs/examples to the running sandbox and follows
# each to the end: templates first, then workflows. An example that is
# meant to fail says so with the annotation examples.rotor.dev/expect. One
# that needs a feature the sandbox may lack says so with
# examples.rotor.dev/needs; ROTOR_EXAMPLES_WITHOUT (comma-separated) names
# what this sandbox lacks, and those examples are skipped, saying so.
set -uo pipefail
cd "$(dirname "$0")/.."
ROTOR=${ROTOR:-bin/rotor}
failures=0
for f in docs/examples/templates/*.yaml; do
  $ROTOR submit -f "$f" || failures=$((failures + 1))
done
skipped=0
for f in docs/examples/*.yaml; do
  needs=$(sed -n 's/.*examples.rotor.dev\/needs: *\([A-Za-z-]*\).*/\1/p' "$f" | head -1)
  if [[ -n $needs && ",${ROTOR_EXAMPLES_WITHOUT:-}," == *",$needs,"* ]]; then
    echo; echo "== $f skipped: it needs $needs, which this sandbox does not have"
    skipped=$((skipped + 1))
    continue
  fi
  expect=$(sed -n 's/.*examples.rotor.dev\/expect: *\([A-Za-z]*\).*/\1/p' "$f" | head -1)
  expect=${expect:-Succeeded}
  echo; echo "== $f (expect $expect)"
  $ROTOR submit -f "$f" --wait --timeout 5m
  rc=$?
  if [[ $expect == Succeeded && $rc -ne 0 ]] || [[ $expect != Succeeded && $rc -eq 0 ]]; then
    echo "!! $f: expected $expect, rotor exited $rc"
    failures=$((failures + 1))
  fi
done
echo
$ROTOR list -A
if ((failures)); then echo "$failures example(s) did not end as expected"; exit 1; fi
if ((skipped)); then echo "every example ended as expected ($skipped skipped: ROTOR_EXAMPLES_WITHOUT=$ROTOR_EXAMPLES_WITHOUT)"; exit 0; fi
echo "every example ended as expected"
