#!/usr/bin/env bash
# Prepare a Debian 12 machine (laptop, CI runner) for codeb and its embedded local stack:
#   1. the Debian packages the stack runs (only the missing ones are installed; needs root),
#   2. Node.js >= 20 is checked (not installed),
#   3. `npm ci` when node_modules is missing or older than package-lock.json.
# Safe to run again; with everything present it takes a couple of seconds.
#
#   sudo bash scripts/setup.sh     # first time (installs packages)
#   bash scripts/setup.sh          # later: checks, and runs npm ci when the lock file changed
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  postgresql      # Postgres server (initdb, postgres); any postgresql-NN counts
  redis-server
  caddy
  podman
  runc            # the OCI runtime the stack's podman is configured to use
  busybox-static  # tiny static userland for test images built without a registry
  openssh-server  # the SSH transport's tests talk to a local sshd
  uidmap          # newuidmap/newgidmap: rootless podman
  slirp4netns     # rootless podman networking
  fuse-overlayfs  # rootless podman storage on older kernels
  catatonit       # podman --init
  debootstrap     # the cached Debian 13 rootfs (scripts/build-rootfs.sh) radosgw runs in
  gpg             # build-rootfs.sh noble: checks the Ubuntu archive key's fingerprint
  ca-certificates
  curl
)

say() { printf 'setup: %s\n' "$*"; }

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

postgres_installed() {
  installed postgresql && return 0
  # A versioned server package (postgresql-15, postgresql-16, ...) is enough.
  dpkg-query -W -f='${Package} ${Status}\n' 'postgresql-[0-9]*' 2>/dev/null |
    grep -Eq '^postgresql-[0-9]+ install ok installed$'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  if [ "$pkg" = postgresql ]; then
    postgres_installed || missing+=("$pkg")
  else
    installed "$pkg" || missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "install them with:"
    echo "  sudo bash scripts/setup.sh"
    echo "or:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "installing: ${missing[*]}"
  # Do not let package scripts start system services (redis on 6379, caddy on 80/2019, a postgres
  # cluster on 5432): the stack runs its own on other ports. policy-rc.d exit 101 = "not allowed".
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  aptlog="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$aptlog" 2>&1; then
    cat "$aptlog" >&2
    say "apt-get failed (output above)"
    exit 1
  fi
  rm -f "$aptlog"
  say "installed ${#missing[@]} package(s)"
else
  say "Debian packages: all present"
fi

# Rootless podman (the stack as a normal user) needs subordinate uid/gid ranges for that user.
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  if ! grep -q "^${SUDO_USER}:" /etc/subuid 2>/dev/null || ! grep -q "^${SUDO_USER}:" /etc/subgid 2>/dev/null; then
    usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "$SUDO_USER"
    say "gave $SUDO_USER subordinate uid/gid ranges 100000-165535 (rootless podman)"
  fi
fi

# Node.js: codeb needs >= 20 (Debian 12's own nodejs is 18).
if ! command -v node >/dev/null 2>&1; then
  say "Node.js is not installed; codeb needs Node.js 20 or newer, e.g.:"
  echo "  curl -fsSL https://deb.nodesource.com/setup_20.x | sudo bash - && sudo apt-get install -y nodejs"
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  say "Node.js $(node -v) is too old; codeb needs 20 or newer (see https://github.com/nodesource/distributions)"
  exit 1
fi

# npm ci when node_modules is missing or older than the lock file. Under sudo, run it as the
# invoking user so the checkout does not end up owned by root.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    runuser -u "$SUDO_USER" -- env PATH="$PATH" npm ci --no-audit --no-fund
  else
    npm ci --no-audit --no-fund
  fi
else
  say "node_modules: up to date"
fi
