#!/bin/sh
# Installs a cachenat release onto this host (or into an image being built).
#
#   ami/install.sh [--offline] [--root DIR] [--node-exporter] RELEASE
#
# RELEASE is release/cachenat-<version>-linux-<arch>.tar.gz from `npm run
# package`, or a directory holding that release unpacked (the `cachenat/`
# folder or its parent). The release carries its own Node runtime: the host
# needs no Node. Refuses (before changing anything) a release for another CPU
# architecture, or whose runtime does not run here. Puts the app in
# /opt/cachenat/<version> (+ `current` symlink), a `cachenat` command in
# /usr/local/bin, the systemd unit, /etc/cachenat/config.yaml
# from the example when there is none, ip_forward=1 in /etc/sysctl.d, and the
# distro's iptables rule-restore service; enables (does not start) cachenat.
# Also enables cachenat-secondary-ips.service: at boot it puts the instance's
# secondary private IPv4s (address mode) on its interfaces where the OS does
# not (Debian); on Amazon Linux 2023 it finds amazon-ec2-net-utils and exits.
#
# Idempotent: a second run with the same release changes nothing. An
# existing config is never overwritten.
#   --offline   do not install distro packages (only check for them)
#   --root DIR  install under DIR instead of / (tests, image trees); implies
#               --offline and uses `systemctl --root`
#   --node-exporter  also install and enable Prometheus' node_exporter with
#               its textfile directory at /var/lib/node_exporter/textfile_collector
#               (set metrics.textfile there; see docs/monitoring.md).
#               The same as NODE_EXPORTER=1 in the environment.
set -eu

offline=0
root=
release=
while [ $# -gt 0 ]; do
  case $1 in
    --offline) offline=1 ;;
    --root) root=${2:?--root needs a directory}; offline=1; shift ;;
    --node-exporter) NODE_EXPORTER=1 ;;
    -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
    -*) echo "install.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    *)
      [ -z "$release" ] || { echo "install.sh: one release at a time, not both $release and $1 (see --help)" >&2; exit 64; }
      release=$1
      ;;
  esac
  shift
done
[ -n "$release" ] || { echo "usage: install.sh [--offline] [--root DIR] [--node-exporter] cachenat-<version>-linux-<arch>.tar.gz|DIR" >&2; exit 64; }
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it writes /opt, /etc and /usr/local/bin)" >&2; exit 77; }

say() { echo "cachenat install: $*"; }
changed=0

# Installs SRC at DEST with MODE unless DEST already has exactly that content and mode.
# (sh has no locals: these names are put_file's own.)
put_file() {
  pf_src=$1 pf_dest=$2 pf_mode=$3
  if [ -f "$pf_dest" ] && cmp -s "$pf_src" "$pf_dest" && [ "$(stat -c %a "$pf_dest")" = "${pf_mode#0}" ]; then return 0; fi
  mkdir -p "$(dirname "$pf_dest")"
  install -m "$pf_mode" "$pf_src" "$pf_dest.cachenat-new"
  mv -f "$pf_dest.cachenat-new" "$pf_dest"
  say "wrote ${pf_dest#"$root"}"
  changed=1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/cachenat-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the release -------------------------------------------------------------
if [ -f "$release" ]; then
  tar -xzf "$release" -C "$work" --no-same-owner
  src=$work/cachenat
elif [ -d "$release/cachenat" ]; then
  src=$release/cachenat
else
  src=$release
fi
if [ ! -f "$src/package.json" ] || [ ! -f "$src/dist/src/cli/main.js" ]; then
  echo "install.sh: $release is not a cachenat release (no package.json and dist/src/cli/main.js); build one with npm run package" >&2
  exit 66
fi
if [ ! -f "$src/node/bin/node" ] || [ ! -f "$src/bin/cachenat" ]; then
  echo "install.sh: $release carries no Node runtime (no node/bin/node and bin/cachenat): it is from an older npm run package; build it again" >&2
  exit 66
fi
version=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$src/package.json" | head -n 1)
case $version in
  '' | *[!A-Za-z0-9.+-]*) echo "install.sh: cannot read a plain version from $src/package.json" >&2; exit 65 ;;
esac

# --- the runtime fits this host ------------------------------------------------
# Its CPU architecture, from the ELF header (3e00 x86-64, b700 AArch64). Under
# --root the image's architecture is not this host's business: not checked.
case $(od -An -tx1 -j18 -N2 "$src/node/bin/node" 2>/dev/null | tr -d ' \n') in
  3e00) release_arch=x86_64 ;;
  b700) release_arch=aarch64 ;;
  *) release_arch=unknown ;;
esac
if [ -z "$root" ]; then
  host_arch=$(uname -m)
  [ "$host_arch" != arm64 ] || host_arch=aarch64
  if [ "$release_arch" != "$host_arch" ]; then
    case $host_arch in
      x86_64) instead="install cachenat-$version-linux-x64.tar.gz instead" ;;
      aarch64) instead="install cachenat-$version-linux-arm64.tar.gz instead" ;;
      *) instead="releases exist for x86_64 and aarch64 only" ;;
    esac
    echo "install.sh: this release's Node runtime is for $release_arch, this host is $host_arch: $instead" >&2
    exit 69
  fi
fi

# It runs here, and is new enough. It links glibc and libstdc++, which every
# host with apt or dnf has (both are C++ programs).
# package.json's engines: node >=22.12.0; test/service/node-range.test.ts keeps
# these numbers in step with it. Under --root it cannot be run: not checked.
NODE_MAJOR=22 NODE_MINOR=12
if [ -z "$root" ]; then
  # NODE_OPTIONS cleared: the caller's (say, --import of a module that is not
  # there) is no business of this check.
  if ! node_version=$(NODE_OPTIONS='' "$src/node/bin/node" -p 'process.versions.node' 2>"$work/node.err"); then
    echo "install.sh: the release's Node runtime does not run on this host (it needs glibc >= 2.28 and libstdc++): $(head -c 300 "$work/node.err")" >&2
    exit 69
  fi
  node_major=${node_version%%.*} node_rest=${node_version#*.}
  node_minor=${node_rest%%.*}
  case $node_major.$node_minor in
    *[!0-9.]* | .*) node_major=0 node_minor=0 ;;
  esac
  if [ "$node_major" -lt "$NODE_MAJOR" ] || { [ "$node_major" -eq "$NODE_MAJOR" ] && [ "$node_minor" -lt "$NODE_MINOR" ]; }; then
    echo "install.sh: the release's Node runtime is $node_version, older than $NODE_MAJOR.$NODE_MINOR (package.json engines); build the release again with npm run package" >&2
    exit 69
  fi
fi

# --- the distro's rule-restore service ---------------------------------------
if command -v apt-get >/dev/null 2>&1 && [ -z "$root" ]; then
  restore_unit=netfilter-persistent.service
  installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
  missing=
  # curl: cachenat-secondary-ips reads the instance's secondary addresses from IMDSv2.
  # python3: the connection audit's conntrack event reader (config audit).
  for p in iptables iptables-persistent conntrack curl python3; do installed "$p" || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    [ "$offline" -eq 0 ] || { echo "install.sh: --offline, but missing packages:$missing" >&2; exit 69; }
    # Do not save whatever rules are loaded right now; cachenat writes rules.v4.
    printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' 'iptables-persistent iptables-persistent/autosave_v6 boolean false' | debconf-set-selections
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
    changed=1
  fi
elif command -v dnf >/dev/null 2>&1 && [ -z "$root" ]; then
  restore_unit=iptables.service
  missing=
  # python3: the connection audit's conntrack event reader (config audit).
  for p in iptables-nft iptables-services conntrack-tools python3; do rpm -q "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    [ "$offline" -eq 0 ] || { echo "install.sh: --offline, but missing packages:$missing" >&2; exit 69; }
    # shellcheck disable=SC2086
    dnf install -y -q $missing
    # iptables-services ships a REJECT-everything-but-SSH ruleset; on a NAT
    # instance that would be a surprise at the next boot. Start from empty
    # tables instead (cachenat saves its own rules here).
    if ! rpm -V iptables-services 2>/dev/null | grep -q ' /etc/sysconfig/iptables$'; then
      printf '%s\n' '# Restored at boot by iptables.service; cachenat keeps its CACHENAT-* chains here.' '*filter' ':INPUT ACCEPT [0:0]' ':FORWARD ACCEPT [0:0]' ':OUTPUT ACCEPT [0:0]' 'COMMIT' >/etc/sysconfig/iptables
      chmod 0600 /etc/sysconfig/iptables
    fi
    changed=1
  fi
else
  # --root, or a distro we do not know: leave packages to the operator.
  restore_unit=
  if [ -e "$root/usr/lib/systemd/system/netfilter-persistent.service" ] || [ -e "$root/lib/systemd/system/netfilter-persistent.service" ]; then
    restore_unit=netfilter-persistent.service
  elif [ -e "$root/usr/lib/systemd/system/iptables.service" ]; then
    restore_unit=iptables.service
  fi
fi

# --- the app -----------------------------------------------------------------
opt=$root/opt/cachenat
if [ -d "$opt/$version" ] && diff -r -q "$src" "$opt/$version" >/dev/null 2>&1; then
  : # this exact release is already there
else
  mkdir -p "$opt"
  rm -rf "$opt/.$version.new"
  cp -R "$src" "$opt/.$version.new"
  chmod -R u=rwX,go=rX "$opt/.$version.new"
  rm -rf "${opt:?}/${version:?}"
  mv "$opt/.$version.new" "$opt/$version"
  say "installed release $version in /opt/cachenat/$version"
  changed=1
fi
if [ "$(readlink "$opt/current" 2>/dev/null || true)" != "$version" ]; then
  ln -sfn "$version" "$opt/current"
  say "/opt/cachenat/current -> $version"
  changed=1
fi

# --- files around it -----------------------------------------------------------
cat >"$work/wrapper" <<'EOF'
#!/bin/sh
# cachenat CLI (installed by ami/install.sh): the current release, on its own Node runtime.
exec /opt/cachenat/current/bin/cachenat "$@"
EOF
put_file "$work/wrapper" "$root/usr/local/bin/cachenat" 0755
put_file "$src/systemd/cachenat.service" "$root/etc/systemd/system/cachenat.service" 0644
put_file "$src/systemd/cachenat-secondary-ips.service" "$root/etc/systemd/system/cachenat-secondary-ips.service" 0644
# Rotation of audit.file's default path (missingok: idle while the audit is off).
[ ! -f "$src/etc/logrotate.d/cachenat-audit" ] || put_file "$src/etc/logrotate.d/cachenat-audit" "$root/etc/logrotate.d/cachenat-audit" 0644

if [ -e "$root/etc/cachenat/config.yaml" ]; then
  : # the operator's config stays as it is
else
  put_file "$src/config.example.yaml" "$root/etc/cachenat/config.yaml" 0644
  say "edit /etc/cachenat/config.yaml (aws.region, forward.allowedSources), then: systemctl start cachenat"
fi

printf '%s\n' '# cachenat forwards packets between interfaces (written by ami/install.sh)' 'net.ipv4.ip_forward = 1' >"$work/sysctl.conf"
put_file "$work/sysctl.conf" "$root/etc/sysctl.d/90-cachenat.conf" 0644

# --- optional: node_exporter serving cachenat's metrics file ------------------
textfile_dir=/var/lib/node_exporter/textfile_collector
exporter_unit=
if [ "${NODE_EXPORTER:-0}" = 1 ]; then
  if [ ! -d "$root$textfile_dir" ]; then
    mkdir -p "$root$textfile_dir"
    chmod 0755 "$root$textfile_dir" # node_exporter runs as its own user and only reads
    say "created $textfile_dir for metrics.textfile"
    changed=1
  fi
  if command -v apt-get >/dev/null 2>&1 && [ -z "$root" ]; then
    if ! dpkg-query -W -f='${Status}' prometheus-node-exporter 2>/dev/null | grep -q 'install ok installed'; then
      [ "$offline" -eq 0 ] || { echo "install.sh: --offline, but missing package: prometheus-node-exporter" >&2; exit 69; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus-node-exporter
      changed=1
    fi
  elif [ -z "$root" ] && ! command -v prometheus-node-exporter >/dev/null 2>&1; then
    say "--node-exporter: this distro has no prometheus-node-exporter package; install node_exporter yourself and run it with --collector.textfile.directory=$textfile_dir"
  fi
  # Debian's unit runs `prometheus-node-exporter $ARGS`: point its textfile collector at our directory.
  printf '%s\n' '# Written by cachenat install.sh --node-exporter: serve cachenat'"'"'s metrics file (docs/monitoring.md).' '[Service]' 'ExecStart=' \
    "ExecStart=/usr/bin/prometheus-node-exporter \$ARGS --collector.textfile.directory=$textfile_dir" >"$work/node-exporter.conf"
  put_file "$work/node-exporter.conf" "$root/etc/systemd/system/prometheus-node-exporter.service.d/cachenat-textfile.conf" 0644
  for dir in /lib/systemd/system /usr/lib/systemd/system; do
    [ ! -e "$root$dir/prometheus-node-exporter.service" ] || exporter_unit=prometheus-node-exporter.service
  done
fi

# --- systemd -------------------------------------------------------------------
enable_unit() {
  if [ -n "$root" ]; then
    systemctl --root="$root" --quiet is-enabled "$1" 2>/dev/null || { systemctl --root="$root" enable "$1"; changed=1; }
  else
    systemctl --quiet is-enabled "$1" 2>/dev/null || { systemctl enable "$1"; changed=1; }
  fi
}
if command -v systemctl >/dev/null 2>&1; then
  # Only a running systemd can reload; in a chroot or image tree, enabling
  # (symlinks) is all there is to do.
  if [ -z "$root" ] && [ -d /run/systemd/system ] && [ "$changed" -eq 1 ]; then
    systemctl daemon-reload
    sysctl -q -p /etc/sysctl.d/90-cachenat.conf || say "could not apply ip_forward now; it applies at boot"
  fi
  [ -z "$restore_unit" ] || enable_unit "$restore_unit"
  enable_unit cachenat-secondary-ips.service
  enable_unit cachenat.service
  if [ -n "$exporter_unit" ]; then
    enable_unit "$exporter_unit"
    # A running exporter picks up the textfile directory only when restarted.
    if [ -z "$root" ] && [ -d /run/systemd/system ] && [ "$changed" -eq 1 ]; then systemctl try-restart "$exporter_unit"; fi
  fi
else
  say "no systemctl: enable /etc/systemd/system/cachenat.service by hand"
fi

if [ "$changed" -eq 0 ]; then say "release $version already installed; nothing changed"; fi
