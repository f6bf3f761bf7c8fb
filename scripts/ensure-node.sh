# shellcheck shell=bash
# Sourced (not run) by scripts/test.sh, demo.sh, bench.sh and .ci/run: makes
# sure the `node` on PATH satisfies package.json's engines (>=22.12.0).
#
# Debian ships Node 20 and no Node 22, so when the system node is older this
# fetches the official Node 22 binary from the npm registry (the
# node-linux-<arch> package, checked against the registry's integrity hash by
# `npm pack`) into .cache/node/ and puts its bin/ first on PATH. Everything
# started afterwards (npm, npx, tap and the children it spawns through
# process.execPath, the lab's daemon) then runs on Node 22.
#
# Keep NODE_PINNED's major in step with engines and ami/install.sh:
# test/service/node-range.test.ts checks that they agree.

NODE_PINNED=22.23.5
NODE_FLOOR=22.12.0

# True when version $1 (x.y.z, no "v") is at least $2.
node_version_at_least() {
  local IFS=.
  # shellcheck disable=SC2206 # splitting on dots is the point
  local have=($1) want=($2) i
  for i in 0 1 2; do
    if [ "${have[i]:-0}" -gt "${want[i]:-0}" ]; then return 0; fi
    if [ "${have[i]:-0}" -lt "${want[i]:-0}" ]; then return 1; fi
  done
  return 0
}

# Prints the directory holding the official Node $NODE_PINNED for Linux on
# ARCH (x64 or arm64): .cache/node/node-linux-ARCH-$NODE_PINNED/package, with
# bin/node in it. Fetches it from the npm registry first when it is not there.
# scripts/package.sh bundles the same runtime into each release tarball.
node_runtime_dir() {
  local arch=$1 repo dir tarball
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  dir="$repo/.cache/node/node-linux-$arch-$NODE_PINNED"
  if [ ! -s "$dir/package/bin/node" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "ensure-node: npm is missing to fetch node-linux-$arch@$NODE_PINNED (apt-get install npm)" >&2
      return 1
    fi
    echo "ensure-node: fetching node-linux-$arch@$NODE_PINNED from the npm registry" >&2
    # Unpacked beside the cache and renamed into place, so an interrupted
    # fetch never leaves a half runtime that looks complete.
    rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp"
    if ! tarball=$(cd "$dir.tmp" && npm pack --silent "node-linux-$arch@$NODE_PINNED") ||
      ! tar -C "$dir.tmp" -xzf "$dir.tmp/$tarball"; then
      rm -rf "$dir.tmp"
      echo "ensure-node: npm pack node-linux-$arch@$NODE_PINNED failed (is registry.npmjs.org reachable?)" >&2
      return 1
    fi
    rm -f "$dir.tmp/$tarball"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir/package"
}

ensure_node() {
  local current arch dir
  current=$(node -v 2>/dev/null | sed 's/^v//' || true)
  if [ -n "$current" ] && node_version_at_least "$current" "$NODE_FLOOR"; then return 0; fi

  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *)
      echo "ensure-node: no Node $NODE_PINNED package for $(uname -m); install Node >= $NODE_FLOOR yourself" >&2
      return 1
      ;;
  esac
  dir=$(node_runtime_dir "$arch") || return 1
  if [ "$("$dir/bin/node" -v 2>/dev/null)" != "v$NODE_PINNED" ]; then
    echo "ensure-node: $dir/bin/node does not run (or is not $NODE_PINNED); delete $(dirname "$dir") and retry" >&2
    return 1
  fi
  export PATH="$dir/bin:$PATH"
  hash -r
}

ensure_node
