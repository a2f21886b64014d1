#!/bin/sh
# Run a Ceph program (radosgw, radosgw-admin) inside the cached Debian 13 rootfs
# (scripts/build-rootfs.sh radosgw), with the stack's data folder mounted at /var/lib/ceph/radosgw.
# Called by the local stack under `unshare --mount --propagation private --pid --fork`, so the
# mounts below exist only for this process tree: the shared rootfs itself is never changed and
# two stacks can use it at once. Needs root.
#   rgw-chroot.sh ROOTFS DATA PROGRAM [ARGS...]
set -eu
root=$1
data=$2
shift 2
mount --bind -- "$data" "$root/var/lib/ceph/radosgw"
mount -t proc proc "$root/proc"
# Ceph's admin sockets and temporary files: private to this run, not in the shared rootfs.
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
exec chroot "$root" "$@"
