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
# Installs what is missing and builds dist/: the lab runs compiled helpers.
scripts/ensure-system.sh --for-tests || exit 1
scripts/lab-sweep.sh >/dev/null 2>&1 || true

mkdir -p .tap
# tap runs two files at a time (.taprc); files that build a lab queue on one
# machine-wide lock (lab/serial.ts), so two labs never share the two cores.
export AWS_EC2_METADATA_DISABLED=true AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
npx tap --reporter=tap "$@" 2>&1 | tee .tap/output.txt
status=${PIPESTATUS[0]}
scripts/lab-sweep.sh >/dev/null 2>&1 || true

summary=$(grep -E '^# \{ total: ' .tap/output.txt | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
pass=${pass:-0}
fail=${fail:-0}
# A non-zero exit with no failing assertion (coverage below the floor, a
# crashed file) still counts as a failure.
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "$pass passed, $fail failed" | tee .tap/summary
exit "$status"
