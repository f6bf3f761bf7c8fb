#!/usr/bin/env bash
# `npm run bench [-- --quick]`: the benchmark suite (bench/run.ts). Needs root:
# it builds network namespaces and iptables rules inside them. Installs the
# lab's packages (scripts/ensure-system.sh) and the load tools the benchmark
# adds, only when missing. Debian has no memtier_benchmark: the Memcached load
# comes from bench/memcache-load.ts.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ]; then
  echo "npm run bench needs root: it creates network namespaces and iptables rules inside them" >&2
  exit 1
fi
# Node >= 22.12 first on PATH (fetches the official binary when Debian's is older).
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh || exit 1
scripts/ensure-system.sh # also builds: npx tsc -p tsconfig.json

have() { command -v "$1" >/dev/null 2>&1; }
need=()
have redis-benchmark || need+=(redis-tools)
have socat || need+=(socat)
have haproxy || need+=(haproxy)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The distro's HAProxy service is not ours to run: the benchmark starts its own.
if have systemctl && systemctl is-active --quiet haproxy 2>/dev/null; then systemctl stop haproxy || true; fi

scripts/lab-sweep.sh >/dev/null 2>&1 || true
status=0
AWS_EC2_METADATA_DISABLED=true node dist/bench/run.js "$@" || status=$?
scripts/lab-sweep.sh >/dev/null 2>&1 || true
exit "$status"
