#!/usr/bin/env bash
# Installs what the lab, the tests and the demo need on a Debian host, only
# when something is missing, then makes sure node_modules and dist/ exist.
# Usage: scripts/ensure-system.sh [--for-tests]
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have iptables-restore || need+=(iptables)
have iptables-legacy-restore || need+=(iptables) # the legacy-backend tests
have redis-server || need+=(redis-server)
have redis-cli || need+=(redis-tools)
have memcached || need+=(memcached)
have conntrack || need+=(conntrack)
have python3 || need+=(python3)
have pgrep || need+=(procps)
have arping || need+=(iputils-arping) # the fake EC2's gratuitous ARP after moving the lab's Elastic IP
if [ "${1:-}" = "--for-tests" ]; then
  have shellcheck || need+=(shellcheck)
  have openssl || need+=(openssl) # the test CA of test/e2e/tls.test.ts
  have packer || need+=(packer)
  have debootstrap || need+=(debootstrap)
  have systemd-analyze || need+=(systemd)
  have prometheus-node-exporter || need+=(prometheus-node-exporter)
  # promtool (in Debian's prometheus package) checks and unit-tests the alert rules in docs/.
  have promtool || need+=(prometheus)
  # For `cloud-init schema` in test/ami/user-data.test.ts only: it must never
  # act on this host (see below).
  have cloud-init || need+=(cloud-init)
fi

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${need[*]} " == *" cloud-init "* || " ${need[*]} " == *" prometheus-node-exporter "* || " ${need[*]} " == *" prometheus "* ]]; then
    # cloud-init is here to validate user-data, node_exporter to read the
    # metrics file inside a lab namespace and prometheus for its promtool, not
    # to run on this machine: cloud-init is disabled before it is installed,
    # so its generator never runs it at boot, and no service starts while
    # they install (prometheus is also disabled at boot, below).
    mkdir -p /etc/cloud
    touch /etc/cloud/cloud-init.disabled
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\n# written by cachenat scripts/ensure-system.sh while installing packages\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [[ " ${need[*]} " == *" prometheus "* ]] && have systemctl; then systemctl disable prometheus >/dev/null 2>&1 || true; fi
fi

# The distro's redis/memcached/node_exporter services are not ours to run: the lab starts its own.
for unit in redis-server memcached prometheus-node-exporter prometheus; do
  if have systemctl && systemctl is-active --quiet "$unit" 2>/dev/null; then systemctl stop "$unit" || true; fi
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npx tsc -p tsconfig.json
