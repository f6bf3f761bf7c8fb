#!/bin/sh
# Builds (once) a Debian bookworm rootfs for the boot test and caches it as a
# tarball keyed by the package list, so later runs only unpack it.
# Usage: build-rootfs.sh CACHE_DIR  -> prints the path of the cached tarball
set -eu

cache_dir=${1:?usage: build-rootfs.sh CACHE_DIR}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# libstdc++6: the release's Node runtime links it (apt does too); procps: /bin/kill for ExecReload;
# curl and python3: install.sh installs them on Debian (cachenat-secondary-ips reads IMDSv2 with curl; the
# connection audit's event reader is python3), and the rootfs has no apt lists.
packages=systemd,systemd-sysv,dbus,iptables,iptables-persistent,netfilter-persistent,conntrack,procps,iproute2,libstdc++6,curl,python3

key=$(printf '%s %s %s\n' "$suite" minbase "$packages" | sha256sum | cut -c1-12)
tarball="$cache_dir/rootfs-$key.tar"
if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi

mkdir -p "$cache_dir"
work=$(mktemp -d "$cache_dir/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# iptables-persistent asks whether to save the current rules; answer no up front.
DEBIAN_FRONTEND=noninteractive debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 || {
  tail -n 30 "$work/log" >&2
  exit 1
}
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar -C "$work/root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$tarball"
