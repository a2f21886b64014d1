#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing (Debian packages when root,
# npm ci), builds the CLI, starts the embedded local stack the integration tests talk to, and runs
# vitest (unit and integration). Extra arguments go to vitest, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# Build, unless dist/ is newer than everything it is made of: setup.sh's `npm ci` (a fresh clone,
# a changed lock file) has just built it through `prepare`, or nothing changed since the last run.
if [ ! -f dist/BUILT ] || [ -n "$(find controller schemas scripts/build.mjs scripts/generate-validators.mjs package.json package-lock.json -newer dist/BUILT -print -quit)" ]; then
  npm run --silent build
fi

# The tests' own stack and state, apart from a developer's ~/.codeb.
export CODEB_HOME="${CODEB_TEST_HOME:-$PWD/.codeb/test-home}"
mkdir -p "$CODEB_HOME"
# The suite's own slot k, never the demo's ports (base 20000, apps 3000-3999) nor another suite's:
# the running test stack's base, else the first free slot's (13000, 13250, ...). The slot moves
# the test files' app port slices (+1700k, CODEB_TEST_SLOT) and the default container network pool
# (10.(98-k).0.0/16; the demo's is 10.99.0.0/16): two stacks on one pool would share the services
# address and project subnets. CODEB_STACK_PORT_BASE, CODEB_TEST_STACK_PORT_BASE, CODEB_TEST_SLOT
# and CODEB_NETWORK_POOL win when set. See docs/stack.md.
read -r base tbase slot pool move < <(node scripts/lib/stack-ports.mjs test-bases "$CODEB_HOME")
if [ "$move" = move ]; then node bin/codeb.js stack down >/dev/null; fi
export CODEB_STACK_PORT_BASE="$base" CODEB_TEST_STACK_PORT_BASE="$tbase" CODEB_TEST_SLOT="$slot"
export CODEB_NETWORK_POOL="${CODEB_NETWORK_POOL:-$pool}"
# In CI the stack is stopped on every exit, quietly (vitest's summary must stay the last lines):
# also when `stack up`, the images or vitest fail, so no part of it is left running.
if [ "${CI:-}" = "true" ]; then trap 'node bin/codeb.js stack down >/dev/null 2>&1 || true' EXIT; fi
node bin/codeb.js stack up
# Test images (no registry is reachable): built into the stack's Podman, skipped when up to date.
bash scripts/build-test-images.sh
# The Debian 13 rootfs with radosgw (per-project S3 key tests; needs root): built once (about a
# minute), cached outside the clone (CODEB_ROOTFS_CACHE), found in milliseconds afterwards.
if [ "$(id -u)" -eq 0 ]; then bash scripts/build-rootfs.sh radosgw >/dev/null; fi
# The bare Debian 13 server the server tests boot (test/helpers/server-host.ts; needs root): its
# packages plus, downloaded only, what `codeb server init` installs (controller/server/packages.json).
# About two minutes once, cached like the one above.
if [ "$(id -u)" -eq 0 ]; then
  CODEB_ROOTFS_PACKAGES="$(node -p 'require("./controller/server/packages.json").bare.join(" ")')" \
  CODEB_ROOTFS_DOWNLOAD="$(node -p 'Object.values(require("./controller/server/packages.json").server).flat().join(" ")')" \
    bash scripts/build-rootfs.sh server >/dev/null
  # The Debian 12 server with Debian's Podman 4.3.1 (server-podman43.test.ts): the same inputs as
  # serverRootfs('bookworm') in test/helpers/server-host.ts: downloaded, what init installs there
  # with the s3rver stand-in (every server package but radosgw). About a minute once (540 MB).
  CODEB_ROOTFS_SUITE=bookworm \
  CODEB_ROOTFS_PACKAGES="$(node -p 'require("./controller/server/packages.json").bare.join(" ")') podman" \
  CODEB_ROOTFS_DOWNLOAD="$(node -p 'Object.entries(require("./controller/server/packages.json").server).filter(([k]) => k !== "storage").flatMap(([, v]) => v).join(" ")')" \
    bash scripts/build-rootfs.sh server >/dev/null
  # The bare Ubuntu 24.04 server (server-ubuntu.test.ts): the same inputs as serverRootfs('noble')
  # in test/helpers/server-host.ts (what init installs, downloaded only; not Ubuntu's Node 18).
  CODEB_ROOTFS_SUITE=noble \
  CODEB_ROOTFS_PACKAGES="$(node -p 'require("./controller/server/packages.json").bare.join(" ")')" \
  CODEB_ROOTFS_DOWNLOAD="$(node -p 'const l = require("./controller/server/packages.json"); [l.server, l.release["ubuntu 24.04"]].flatMap((c) => Object.values(c).flat()).filter((p) => p !== "nodejs").join(" ")')" \
    bash scripts/build-rootfs.sh server >/dev/null
fi

# Plain output in logs (CI parses vitest's closing lines).
if [ ! -t 1 ]; then export NO_COLOR=1; unset FORCE_COLOR; fi

status=0
npx vitest run "$@" || status=$?
exit "$status"
