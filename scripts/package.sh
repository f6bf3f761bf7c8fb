#!/bin/sh
# `npm run package`: builds release/cachenat-<version>-linux.tar.gz, the one
# artifact ami/install.sh installs (and the Packer template uploads).
# Self-contained: production node_modules are inside, nothing is fetched on
# the target. The dependencies are plain JavaScript, so one tarball serves
# x86_64 and arm64.
#
# Layout: cachenat/{dist/, node_modules/, package.json, package-lock.json,
#         config.example.yaml, systemd/cachenat.service,
#         systemd/cachenat-secondary-ips.service, ami/install.sh,
#         ami/secondary-ips.sh, README.md}
set -eu
cd "$(dirname "$0")/.."

version=$(node -p 'require("./package.json").version')
name=cachenat-$version-linux.tar.gz

npx tsc -p tsconfig.json

stage=$(mktemp -d "${TMPDIR:-/tmp}/cachenat-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
app=$stage/cachenat
mkdir -p "$app/systemd" "$app/ami"
cp -R dist "$app/dist"
cp package.json package-lock.json config.example.yaml "$app/"
if [ -f README.md ]; then cp README.md "$app/"; else echo "package.sh: warning: no README.md to ship" >&2; fi
cp systemd/cachenat.service systemd/cachenat-secondary-ips.service "$app/systemd/"
cp ami/install.sh ami/secondary-ips.sh "$app/ami/"

# Production dependencies exactly as locked, from npm's cache when it has them.
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
rm -f "$app/node_modules/.package-lock.json"

mkdir -p release
# Stable order, owner and times, so the same tree gives the same tarball.
mtime=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  --mode=u+rwX,go+rX,go-w -cf - cachenat | gzip -n -9 >"release/$name.tmp"
mv "release/$name.tmp" "release/$name"
echo "release/$name ($(du -h "release/$name" | cut -f1))"
