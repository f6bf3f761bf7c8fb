#!/bin/sh
# Puts this instance's secondary private IPv4 addresses on its network
# interfaces, as instance metadata (IMDSv2) lists them. Address mode
# (forward.listenAddresses) needs every listen address configured on the
# inbound interface; docs/aws-setup.md, "Address mode".
#
#   secondary-ips.sh
#
# Run at boot by cachenat-secondary-ips.service, before cachenat. For each
# interface in the metadata it adds every address of
# network/interfaces/macs/<mac>/local-ipv4s that the interface does not have
# yet, as <address>/32. It never removes an address. A second run adds nothing.
#
# Amazon Linux 2023 (amazon-ec2-net-utils, which ships setup-policy-routes)
# does this on its own: the script then does nothing.
#
# Exit: 0 done, or nothing to do (also without a metadata service: not on
# EC2); 69 the metadata service answered the token but not the addresses;
# 75 an interface in the metadata has no IPv4 address yet (network not up).
# CACHENAT_IMDS_URL replaces http://169.254.169.254 (tests).
set -eu

imds=${CACHENAT_IMDS_URL:-http://169.254.169.254}
say() { echo "cachenat secondary-ips: $*"; }

if command -v setup-policy-routes >/dev/null 2>&1; then
  say "amazon-ec2-net-utils configures secondary addresses on this host; nothing to do"
  exit 0
fi

if ! command -v curl >/dev/null 2>&1; then
  echo "cachenat secondary-ips: curl is not installed, so instance metadata cannot be read; nothing done (install.sh installs curl on Debian)" >&2
  exit 0
fi

# Not on EC2 (a lab, a test rig), or the metadata service is off: nothing to
# read, so nothing to do. In address mode cachenat itself then refuses to
# start and names each listen address missing from the interface.
token=$(curl -sSf --connect-timeout 2 --max-time 5 --retry 3 --retry-delay 1 --retry-connrefused -X PUT \
  -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$imds/latest/api/token") || {
  echo "cachenat secondary-ips: no IMDSv2 token from $imds (not on EC2, or the metadata service is off); nothing done" >&2
  exit 0
}
metadata() {
  curl -sSf --connect-timeout 2 --max-time 5 --retry 3 --retry-delay 1 -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/$1"
}

macs=$(metadata network/interfaces/macs/) || { echo "cachenat secondary-ips: cannot read network/interfaces/macs/ from $imds" >&2; exit 69; }

added=0 not_up=0
for entry in $macs; do
  mac=${entry%/}
  case $mac in
    '' | *[!0-9a-f:]*) say "skipping odd metadata entry '$entry'"; continue ;;
  esac
  # `ip -o link` prints "<n>: <name>: <flags> ... link/ether <mac> brd ...".
  iface=$(ip -o link show | awk -v mac="$mac" '{ for (i = 1; i < NF; i++) if ($i == "link/ether" && $(i + 1) == mac) { sub(/:$/, "", $2); sub(/@.*/, "", $2); print $2; exit } }')
  if [ -z "$iface" ]; then
    say "no interface here has MAC $mac; skipped"
    continue
  fi
  have=$(ip -4 -o addr show dev "$iface")
  if [ -z "$have" ]; then
    echo "cachenat secondary-ips: $iface ($mac) has no IPv4 address yet; run again once its network is up" >&2
    not_up=1
    continue
  fi
  ips=$(metadata "network/interfaces/macs/$mac/local-ipv4s") || { echo "cachenat secondary-ips: cannot read the addresses of $mac" >&2; exit 69; }
  for ip in $ips; do
    case $ip in
      *[!0-9.]* | *.*.*.*.* | .* | *. | *..*) say "skipping odd address '$ip' of $mac"; continue ;;
      *.*.*.*) ;;
      *) say "skipping odd address '$ip' of $mac"; continue ;;
    esac
    # Already there, with any prefix length (the primary address has its subnet's).
    if printf '%s\n' "$have" | grep -q " inet $ip/"; then continue; fi
    ip addr add "$ip/32" dev "$iface"
    say "added $ip/32 to $iface"
    added=$((added + 1))
  done
done

[ "$not_up" -eq 0 ] || exit 75
[ "$added" -gt 0 ] || say "every secondary address is already configured; nothing to add"
