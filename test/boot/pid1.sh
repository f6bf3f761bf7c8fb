#!/bin/sh
# Boots systemd as PID 1 in a Debian rootfs, in new PID, mount, UTS, IPC and
# cgroup namespaces (the network namespace is the caller's: run this under
# `nsenter --net=…`).
#
#   pid1.sh ROOT CGROUP        from the host: moves itself into its own cgroup
#                              (in both hierarchies) and unshares
#   pid1.sh --inside ROOT      as PID 1: mounts the API file systems, then
#                              becomes systemd
set -eu

if [ "$1" != --inside ]; then
  root=$1 cgroup=$2
  # Our own cgroup, so the container's systemd builds its tree under it and
  # teardown can kill and remove exactly that.
  for hierarchy in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
    if [ -w "$hierarchy/cgroup.procs" ]; then
      mkdir -p "$hierarchy/$cgroup"
      echo $$ >"$hierarchy/$cgroup/cgroup.procs"
    fi
  done
  exec unshare --pid --fork --mount --uts --ipc --cgroup --kill-child=SIGKILL "$0" --inside "$root"
fi

root=$2
mount --make-rprivate /
# The root must be a mount point of its own: systemd's per-service mount
# namespaces (PrivateTmp=, ProtectSystem=, …) fail with EINVAL otherwise.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs -o mode=755,nosuid tmpfs "$root/sys/fs/cgroup"
if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mountinfo; then
  # Hybrid host: cgroup2 beside a named v1 hierarchy for systemd.
  mkdir "$root/sys/fs/cgroup/unified" "$root/sys/fs/cgroup/systemd"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup/unified"
  mount -t cgroup -o none,name=systemd cgroup "$root/sys/fs/cgroup/systemd"
else
  umount "$root/sys/fs/cgroup"
  mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
fi

mount -t tmpfs -o mode=755,nosuid tmpfs "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
touch "$root/dev/console"
mount --bind /dev/null "$root/dev/console"
mkdir -p "$root/dev/pts" "$root/dev/shm" "$root/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"

hostname cachenat-boot
export container=cachenat-boot
exec chroot "$root" /lib/systemd/systemd --system --log-target=journal-or-kmsg
