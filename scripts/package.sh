#!/usr/bin/env bash
# `npm run package [-- --arch x64|arm64] [--out DIR]`: builds the release
# tarballs that ami/install.sh installs, one per CPU architecture (both by
# default), in DIR (release/ by default):
#
#   release/cachenat-<version>-linux-x64.tar.gz
#   release/cachenat-<version>-linux-arm64.tar.gz
#   release/SHA256SUMS          (sha256sum -c --ignore-missing SHA256SUMS)
#
# Each is self-contained: the official Node runtime of its architecture (the
# node-linux-<arch> package ensure-node.sh fetches, NODE_PINNED), the compiled
# app and its production node_modules, so the target needs neither Node nor
# npm nor network access. The dependencies are plain JavaScript (checked
# below), so both tarballs carry the same node_modules.
#
# Runs on a Linux build machine (GNU tar) with npm and access to the npm
# registry, never on the NAT instance.
#
# Layout: cachenat/{bin/cachenat, node/bin/node, node/LICENSE, dist/,
#         node_modules/, package.json, package-lock.json, config.example.yaml,
#         systemd/cachenat.service, systemd/cachenat-secondary-ips.service,
#         ami/install.sh, ami/secondary-ips.sh, README.md, LICENSE}
set -euo pipefail

arches=()
out=
while [ $# -gt 0 ]; do
  case $1 in
    --arch)
      case ${2:-} in
        x64 | arm64) arches+=("$2") ;;
        *) echo "package.sh: --arch takes x64 or arm64, not '${2:-}'" >&2; exit 64 ;;
      esac
      shift
      ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done
[ "${#arches[@]}" -gt 0 ] || arches=(x64 arm64)
if [ -n "$out" ]; then mkdir -p "$out" && out=$(cd "$out" && pwd); fi
cd "$(dirname "$0")/.."
out=${out:-$PWD/release}
mkdir -p "$out"

# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh

version=$(node -p 'require("./package.json").version')

stage=$(mktemp -d "${TMPDIR:-/tmp}/cachenat-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
app=$stage/common/cachenat
mkdir -p "$app/systemd" "$app/ami" "$app/bin" "$app/etc/logrotate.d"
# Compiled into the stage, not dist/: a lab test may be running from dist/.
# The release needs src/ only (dist/src/cli/main.js), not the lab, benchmarks or
# the CDK constructs (compiled here because a lab file imports them).
npx tsc -p tsconfig.json --outDir "$app/dist"
rm -rf "$app/dist/lab" "$app/dist/bench" "$app/dist/deploy"
cp package.json package-lock.json config.example.yaml README.md LICENSE "$app/"
cp systemd/cachenat.service systemd/cachenat-secondary-ips.service "$app/systemd/"
cp ami/install.sh ami/secondary-ips.sh "$app/ami/"
cp etc/logrotate.d/cachenat-audit "$app/etc/logrotate.d/"
cp scripts/launcher.sh "$app/bin/cachenat"
chmod 0755 "$app/bin/cachenat"

# Production dependencies exactly as locked, from npm's cache when it has them.
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
rm -f "$app/node_modules/.package-lock.json"
# Type declarations are for the compiler, never loaded at run time: half of
# node_modules' 64 MB (the AWS SDK's dist-types).
find "$app/node_modules" -type d -name dist-types -prune -exec rm -rf {} +
find "$app/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete
# One node_modules serves both architectures only while nothing in it is compiled.
native=$(find "$app/node_modules" \( -name '*.node' -o -name binding.gyp \) -print | head -n 3)
if [ -n "$native" ]; then
  echo "package.sh: production dependencies contain native code, which one tarball per architecture cannot share:" >&2
  echo "$native" >&2
  exit 1
fi

# The ELF machine field of a binary: 3e00 is x86-64, b700 is AArch64.
elf_machine() { od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'; }

# Stable order, owner and times, so the same tree gives the same tarball.
# gzip -6: -9 takes three times as long for 0.7 % less on the Node binary.
mtime=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
for arch in "${arches[@]}"; do
  runtime=$(node_runtime_dir "$arch")
  case $arch:$(elf_machine "$runtime/bin/node") in
    x64:3e00 | arm64:b700) ;;
    *) echo "package.sh: $runtime/bin/node is not a $arch binary; delete $(dirname "$runtime") and retry" >&2; exit 1 ;;
  esac
  tree=$stage/$arch
  mkdir -p "$tree"
  cp -R "$stage/common/cachenat" "$tree/cachenat"
  mkdir -p "$tree/cachenat/node/bin"
  cp "$runtime/bin/node" "$tree/cachenat/node/bin/node"
  cp "$runtime/LICENSE" "$tree/cachenat/node/LICENSE"
  name=cachenat-$version-linux-$arch.tar.gz
  tar -C "$tree" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
    --mode=u+rwX,go+rX,go-w -cf - cachenat | gzip -n -6 >"$out/$name.tmp"
  mv "$out/$name.tmp" "$out/$name"
  rm -rf "$tree"
  echo "${out#"$PWD"/}/$name ($(du -h "$out/$name" | cut -f1))"
done

# The sums of every tarball of this version in $out, whichever run made it.
(cd "$out" && sha256sum -- "cachenat-$version"-linux-*.tar.gz >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
echo "${out#"$PWD"/}/SHA256SUMS"
