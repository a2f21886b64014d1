#!/usr/bin/env bash
# A cached Debian (or Ubuntu) root filesystem, built once with debootstrap and reused. Prints its path.
#
#   bash scripts/build-rootfs.sh radosgw      # Debian 13 + radosgw (the stack's optional S3 backend)
#   bash scripts/build-rootfs.sh base         # Debian 13, minbase only
#   CODEB_ROOTFS_SUITE=noble ... bash scripts/build-rootfs.sh server   # Ubuntu 24.04 (below)
#   CODEB_ROOTFS_PACKAGES="systemd openssh-server" CODEB_ROOTFS_DOWNLOAD="podman caddy" \
#     bash scripts/build-rootfs.sh server
#
# The `server` variant is a bare server (test/helpers/server-host.ts boots it with systemd as PID 1):
# CODEB_ROOTFS_PACKAGES are installed; CODEB_ROOTFS_DOWNLOAD are only downloaded (with everything they
# need that is not installed) into the rootfs's apt cache, and its package lists are kept, so that
# `apt-get install` of them works later inside the rootfs without any network (a test host reaches
# no mirror). Nothing of the download set is unpacked.
#
# The folder is keyed by its inputs: suite, architecture, package list and this script's own hash
# (a change to any of them builds a new one; the old one stays until deleted by hand). It is built in
# a temporary folder beside it and renamed into place, so a half-built rootfs is never used; two
# builders of the same key at once wait for each other (flock). Needs root (debootstrap, chroot).
#
# Environment:
#   CODEB_ROOTFS_CACHE    where rootfs folders live (default /var/cache/codeb/rootfs)
#   CODEB_ROOTFS_SUITE    Debian suite (default trixie), or `noble` for Ubuntu 24.04
#   CODEB_DEBIAN_MIRROR   mirror URL (default: the Debian mirror this machine's apt uses)
#   CODEB_UBUNTU_MIRROR   mirror URL for noble (default http://archive.ubuntu.com/ubuntu)
#   CODEB_ROOTFS_PACKAGES extra packages for the variant (space separated)
#   CODEB_ROOTFS_DOWNLOAD packages to download but not install (variant `server` only)
# Progress goes to stderr; stdout is only the path.
#
# Ubuntu (noble): this machine's debootstrap may predate noble; every Ubuntu release since gutsy
# bootstraps with the `gutsy` script (later releases' scripts are links to it). Components main and
# universe (podman, caddy, radosgw are in universe), pockets release, -updates and -security, as an
# Ubuntu server has them. The archive key: ubuntu-archive-keyring.gpg when this machine has it (the
# ubuntu-keyring package), else taken from the mirror's ubuntu-keyring package and used only if it is
# the key whose fingerprint is pinned here (a mirror cannot slip in a key of its own).
set -euo pipefail

variant="${1:-}"
case "$variant" in
  base) packages="" ;;
  radosgw) packages="radosgw" ;;  # radosgw brings radosgw-admin and the dbstore backend
  server) packages="" ;;           # the caller names the packages (CODEB_ROOTFS_PACKAGES)
  *) echo "usage: build-rootfs.sh base|radosgw|server  (prints the rootfs path)" >&2; exit 2 ;;
esac
packages="$(printf '%s %s' "$packages" "${CODEB_ROOTFS_PACKAGES:-}" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')"
packages="${packages% }"
download="$(printf '%s' "${CODEB_ROOTFS_DOWNLOAD:-}" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')"
download="${download% }"
if [ -n "$download" ] && [ "$variant" != server ]; then echo "build-rootfs: CODEB_ROOTFS_DOWNLOAD is for the server variant only" >&2; exit 2; fi
for p in $packages $download; do
  [[ "$p" =~ ^[a-z0-9][a-z0-9+.-]*$ ]] || { echo "build-rootfs: not a Debian package name: $p" >&2; exit 2; }
done

suite="${CODEB_ROOTFS_SUITE:-trixie}"
[[ "$suite" =~ ^[a-z]+$ ]] || { echo "build-rootfs: not a Debian suite name: $suite" >&2; exit 2; }
case "$suite" in
  noble) distro=ubuntu ;;
  *) distro=debian ;;
esac
cache="${CODEB_ROOTFS_CACHE:-/var/cache/codeb/rootfs}"
arch="$(dpkg --print-architecture)"
say() { printf 'build-rootfs: %s\n' "$*" >&2; }

# The Debian mirror apt uses here (deb822 "URIs:" or one-line "deb URL suite"), security excluded.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '
      /^[[:space:]]*#/ { next }
      /^URIs:/ { for (i = 2; i <= NF; i++) print $i }
      /^deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }
    ' "$f"
  done | grep -E '/debian/?$' | grep -v security | head -n 1
}
if [ "$distro" = ubuntu ]; then
  mirror="${CODEB_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
else
  mirror="${CODEB_DEBIAN_MIRROR:-$(apt_mirror || true)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi

self_hash="$(sha256sum "$0" | cut -c1-16)"
key="$(printf '%s\n' "$suite" "$arch" "$variant" "$packages" "$download" "$self_hash" | sha256sum | cut -c1-16)"
name="$suite-$variant-$key"
target="$cache/$name"

if [ -f "$target/.codeb-rootfs.json" ]; then echo "$target"; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "build-rootfs: needs root (debootstrap); run: sudo bash scripts/build-rootfs.sh $variant" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-rootfs: debootstrap is missing: sudo bash scripts/setup.sh" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9
if [ -f "$target/.codeb-rootfs.json" ]; then echo "$target"; exit 0; fi

tmp="$(mktemp -d "$cache/.build-$name.XXXXXX")"
cleanup() {
  mountpoint -q "$tmp/proc" 2>/dev/null && umount "$tmp/proc" || true
  rm -rf --one-file-system "$tmp"
  rm -f "$tmp.keyring.gpg"
}
trap cleanup EXIT

started=$(date +%s)
say "debootstrap $suite ($arch) from $mirror into $tmp (a few minutes; once per key)"
log="$cache/$name.log"
: >"$log"
bootstrap=(debootstrap --variant=minbase --arch="$arch")
bootscript=()
if [ "$distro" = ubuntu ]; then
  # "Ubuntu Archive Automatic Signing Key (2018) <ftpmaster@ubuntu.com>", which signs noble.
  ubuntu_key_fpr=F6ECB3762474EDA9D21B7022871920D1991BC93C
  keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg
  if [ ! -r "$keyring" ]; then
    keyring="$tmp.keyring.gpg"
    kdir="$(mktemp -d)"
    deb="$mirror/pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb"
    if ! curl -fsS -o "$kdir/k.deb" "$deb" >>"$log" 2>&1 || ! dpkg-deb -x "$kdir/k.deb" "$kdir/x" >>"$log" 2>&1; then
      rm -rf "$kdir"; say "could not fetch the Ubuntu archive key from $deb"; exit 1
    fi
    cp "$kdir/x/etc/apt/trusted.gpg.d/ubuntu-keyring-2018-archive.gpg" "$keyring"
    fprs="$(GNUPGHOME="$kdir" gpg --batch --show-keys --with-colons "$keyring" 2>>"$log" | awk -F: '$1 == "fpr" { print $10 }')"
    rm -rf "$kdir"
    if [ "$fprs" != "$ubuntu_key_fpr" ]; then
      rm -f "$keyring"; say "the Ubuntu archive key from $deb is not $ubuntu_key_fpr (found: ${fprs:-none}); refusing it"; exit 1
    fi
  fi
  bootstrap+=(--components=main,universe --keyring="$keyring")
  [ -e "/usr/share/debootstrap/scripts/$suite" ] || bootscript=(/usr/share/debootstrap/scripts/gutsy)
fi
if ! "${bootstrap[@]}" "$suite" "$tmp" "$mirror" "${bootscript[@]}" >>"$log" 2>&1; then
  tail -n 20 "$log" >&2
  say "debootstrap failed; whole log: $log"
  exit 1
fi
if [ "$distro" = ubuntu ]; then
  rm -f "$tmp.keyring.gpg"
  printf 'deb %s %s main universe\n' "$mirror" "$suite" "$mirror" "$suite-updates" "$mirror" "$suite-security" >"$tmp/etc/apt/sources.list"
fi
if [ -n "$packages$download" ]; then
  say "installing in the rootfs: ${packages:-nothing}${download:+; downloading only: $download}"
  # No service may start during installation (the rootfs shares this machine's network).
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  mount -t proc proc "$tmp/proc"
  # shellcheck disable=SC2086 # $packages is a validated, space separated list
  if ! chroot "$tmp" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
      sh -c 'apt-get update -qq && { [ $# -eq 0 ] || apt-get install -y -qq --no-install-recommends "$@"; }' sh $packages >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "apt-get in the rootfs failed; whole log: $log"
    exit 1
  fi
  chroot "$tmp" apt-get clean >>"$log" 2>&1 || true
  # shellcheck disable=SC2086 # $download is a validated, space separated list
  if [ -n "$download" ] && ! chroot "$tmp" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
      apt-get install -y -qq --no-install-recommends --download-only $download >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "apt-get --download-only in the rootfs failed; whole log: $log"
    exit 1
  fi
  umount "$tmp/proc"
  rm -f "$tmp/usr/sbin/policy-rc.d"
fi
if [ -z "$download" ]; then
  chroot "$tmp" apt-get clean >>"$log" 2>&1 || true
  rm -rf "$tmp/var/lib/apt/lists/"*
fi
secs=$(( $(date +%s) - started ))
printf '{"suite":"%s","arch":"%s","variant":"%s","packages":"%s","download":"%s","mirror":"%s","builtAt":"%s","seconds":%d}\n' \
  "$suite" "$arch" "$variant" "$packages" "$download" "$mirror" "$(date -u +%FT%TZ)" "$secs" >"$tmp/.codeb-rootfs.json"
chmod 755 "$tmp"
mv -T "$tmp" "$target"
trap - EXIT
say "built $target in ${secs}s ($(du -sh --one-file-system "$target" | cut -f1))"
echo "$target"
