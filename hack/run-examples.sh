#!/usr/bin/env bash
# Submits every example in docs/examples to the running sandbox and follows
# each to the end: templates first, then workflows. An example that is
# meant to fail says so with the annotation examples.rotor.dev/expect.
set -uo pipefail
cd "$(dirname "$0")/.."
ROTOR=${ROTOR:-bin/rotor}
failures=0
for f in docs/examples/templates/*.yaml; do
  $ROTOR submit -f "$f" || failures=$((failures + 1))
done
for f in docs/examples/*.yaml; do
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
echo "every example ended as expected"
