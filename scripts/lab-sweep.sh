#!/usr/bin/env bash
# Removes what crashed lab runs (lab/lab.ts) left behind: network namespaces
# named cnlXXXX-*, their /etc/netns directories and temp dirs, and the
# redis-server / memcached processes serving lab addresses (198.19.0.x).
#
# A lab whose owning process is still alive belongs to a run in progress and
# is left alone; --all removes it anyway. CI runs this before and after tests.
#
#   scripts/lab-sweep.sh [--all]
set -euo pipefail

all=false
case "${1:-}" in
  --all) all=true ;;
  '') ;;
  *) echo "usage: $0 [--all]" >&2; exit 2 ;;
esac

tmp="${TMPDIR:-/tmp}"
tmp="${tmp%/}"
prefix_re='^cnl[0-9a-f]{4}$'
live=()

owner_alive() {
  local pid
  pid="$(cat "$tmp/cachenat-lab-$1/owner.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# Every lab prefix with something left: a namespace, an /etc/netns dir or a temp dir.
prefixes() {
  {
    ip netns list | awk '{ print $1 }'
    find /etc/netns -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null || true
    find "$tmp" -mindepth 1 -maxdepth 1 -name 'cachenat-lab-*' -printf '%f\n' 2>/dev/null | sed 's/^cachenat-lab-//'
  } | sed 's/-.*//' | grep -E "$prefix_re" | sort -u || true
}

for prefix in $(prefixes); do
  if ! $all && owner_alive "$prefix"; then
    live+=("$prefix")
    echo "lab-sweep: keeping $prefix (its run is still going)"
    continue
  fi
  for ns in $(ip netns list | awk '{ print $1 }' | grep "^$prefix-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns"
    echo "lab-sweep: deleted namespace $ns"
  done
  rm -rf "/etc/netns/$prefix"-* "$tmp/cachenat-lab-$prefix"
done

# Cache servers outlive their namespace when a run is SIGKILLed: ip netns
# identify then names no namespace (or a swept one). Those of live labs stay.
for pid in $(pgrep -x redis-server || true) $(pgrep -x memcached || true); do
  grep -q '198\.19\.0\.' "/proc/$pid/cmdline" 2>/dev/null || continue
  ns="$(ip netns identify "$pid" 2>/dev/null || true)"
  owner="${ns%%-*}"
  if [[ -n "$ns" ]] && printf '%s\n' "${live[@]}" | grep -qx "$owner"; then
    continue
  fi
  if [[ -n "$ns" && ! "$owner" =~ $prefix_re ]]; then
    continue # not a lab's namespace: not ours to touch
  fi
  what="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed 's/ *$//' || true)"
  kill -KILL "$pid" 2>/dev/null && echo "lab-sweep: killed pid $pid: $what"
done
exit 0
