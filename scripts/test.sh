#!/usr/bin/env bash
# `npm test`: unit tests, real-iptables tests in throwaway namespaces, and the
# end-to-end lab. Needs root (network namespaces). Extra arguments go to tap.
# Ends with a plain "N passed, N failed" line (also written to .tap/summary).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ]; then
  echo "npm test needs root: the tests create network namespaces and iptables rules inside them" >&2
  exit 1
fi
# Node >= 22.12 first on PATH (fetches the official binary when Debian's is older).
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh || exit 1
# Installs what is missing and builds dist/: the lab runs compiled helpers.
scripts/ensure-system.sh --for-tests || exit 1
scripts/lab-sweep.sh >/dev/null 2>&1 || true

mkdir -p .tap
echo "# node $(node -v) ($(command -v node))" | tee .tap/output.txt
# The CDK app (deploy/) has packages of its own, kept out of the daemon's
# install; test/deploy/cdk-synth.test.ts needs them (the synth itself runs
# offline). Installed when missing or older than their lock; a failure counts.
deploy_failed=0
if [ ! -d deploy/node_modules ] || [ deploy/package-lock.json -nt deploy/node_modules ]; then
  if ! npm --prefix deploy ci --no-audit --no-fund 2>&1 | tee -a .tap/output.txt; then
    echo "not ok - npm --prefix deploy ci (the CDK app's packages)" | tee -a .tap/output.txt
    deploy_failed=1
  fi
fi
# The tests are TypeScript too: a type error in test/ is a failure, counted
# before tap runs (tap itself strips types without checking them).
typecheck_failed=0
if ! npx tsc -p tsconfig.test.json 2>&1 | tee -a .tap/output.txt; then
  echo "not ok - type-check of src, lab, bench and test (tsconfig.test.json)" | tee -a .tap/output.txt
  typecheck_failed=1
fi
# tap runs two files at a time (.taprc); files that build a lab queue on one
# machine-wide lock (lab/serial.ts), so two labs never share the two cores.
export AWS_EC2_METADATA_DISABLED=true
npx tap --reporter=tap "$@" 2>&1 | tee -a .tap/output.txt
status=${PIPESTATUS[0]}
scripts/lab-sweep.sh >/dev/null 2>&1 || true

summary=$(grep -E '^# \{ total: ' .tap/output.txt | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
pass=${pass:-0}
fail=$(( ${fail:-0} + typecheck_failed + deploy_failed ))
if [ "$typecheck_failed" -ne 0 ] || [ "$deploy_failed" -ne 0 ]; then [ "$status" -eq 0 ] && status=1; fi
# A non-zero exit with no failing assertion (coverage below the floor, a
# crashed file) still counts as a failure.
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "$pass passed, $fail failed" | tee .tap/summary
exit "$status"
