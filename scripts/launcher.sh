#!/bin/sh
# cachenat: runs the release's own Node runtime on the release's app.
# Installed as bin/cachenat in each release tarball by scripts/package.sh.
#
# Only shell built-ins are used, so it works with any PATH, even an empty one
# (systemd, cron, `env -i`). It finds the release from its own path; call it
# by that path (or through a symlinked directory such as
# /opt/cachenat/current/bin), not through a symlink to this file:
# ami/install.sh puts a two-line wrapper in /usr/local/bin instead.
case $0 in
  */*) bin=${0%/*} ;;
  *) bin=. ;;
esac
release=$(cd -P -- "$bin/.." && pwd -P) || exit 127
exec "$release/node/bin/node" "$release/dist/src/cli/main.js" "$@"
