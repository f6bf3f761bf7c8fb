#!/usr/bin/env bash
# `npm run demo`: the namespace lab with real forwarding, for a person to watch.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ]; then
  echo "npm run demo needs root: it creates network namespaces and iptables rules inside them" >&2
  exit 1
fi
# Node >= 22.12 first on PATH (fetches the official binary when Debian's is older).
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh || exit 1
scripts/ensure-system.sh
scripts/lab-sweep.sh >/dev/null 2>&1 || true
AWS_EC2_METADATA_DISABLED=true node dist/lab/demo.js
