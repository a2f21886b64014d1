#!/usr/bin/env bash
# Build the test images localhost/codeb-testapp:v1 .. v4 WITHOUT a container registry:
# a root filesystem holding this machine's node binary (and the shared libraries `ldd` lists for
# it), the test app test/app/app.js, and the pg and ioredis packages (with their dependencies)
# copied from this checkout's node_modules, imported with `podman import`. The four tags run the
# same code; each bakes in its own VERSION (v1..v4) so deploys can change images. See docs/runtime.md.
#
#   bash scripts/build-test-images.sh                    # into the local stack's Podman (settings.json)
#   bash scripts/build-test-images.sh --socket PATH      # into the Podman API service at PATH
#   bash scripts/build-test-images.sh --local            # into this machine's own Podman storage
#   bash scripts/build-test-images.sh --force            # rebuild even when up to date
#
# Where the images go, first match wins: --socket, $CODEB_PODMAN_SOCKET, podman.socketPath of the
# settings file that `codeb stack up` writes ($CODEB_SETTINGS or $CODEB_HOME/settings.json, the same
# file codeb reads), else this machine's own Podman with scripts/podman/containers.conf.
#
# Idempotent and fast when up to date: every image carries the hash of its inputs in the label
# codeb.testapp.inputs; when all four tags carry the current hash nothing is built.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

REPO=localhost/codeb-testapp
VERSIONS=(v1 v2 v3 v4)
LABEL_KEY=codeb.testapp.inputs
NODE_BIN="${CODEB_TESTAPP_NODE:-$(command -v node)}"
BUSYBOX="${CODEB_TESTAPP_BUSYBOX:-/bin/busybox}"
BUILD_DIR="${CODEB_TESTAPP_BUILD_DIR:-$ROOT/.codeb/build/testapp}"

say() { printf 'build-test-images: %s\n' "$*"; }
die() { printf 'build-test-images: error: %s\n' "$*" >&2; exit 1; }

socket="${CODEB_PODMAN_SOCKET:-}"
mode=auto
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) [ $# -ge 2 ] || die "--socket needs a path"; socket="$2"; mode=remote; shift 2 ;;
    --local) mode=local; shift ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

command -v podman >/dev/null || die "podman is not installed (run: sudo bash scripts/setup.sh)"
[ -x "$NODE_BIN" ] || die "no node binary found (set CODEB_TESTAPP_NODE)"
[ -x "$BUSYBOX" ] || die "no static busybox at $BUSYBOX (Debian package busybox-static; or set CODEB_TESTAPP_BUSYBOX)"
for pkg in pg ioredis; do
  [ -f "node_modules/$pkg/package.json" ] || die "node_modules/$pkg is missing: run npm ci first"
done

if [ "$mode" = auto ] && [ -z "$socket" ]; then
  settings="${CODEB_SETTINGS:-}"
  if [ -z "$settings" ]; then
    if [ -n "${CODEB_HOME:-}" ]; then home="$CODEB_HOME"
    elif [ -d /opt/codeb ]; then home=/opt/codeb
    else home="$HOME/.codeb"; fi
    settings="$home/settings.json"
  fi
  if [ -f "$settings" ]; then
    socket="$(node -e 'const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); process.stdout.write((s.podman&&s.podman.socketPath)||"")' "$settings")"
  fi
fi
if [ "$mode" != local ] && [ -n "$socket" ]; then
  [ -S "$socket" ] || die "no Podman API socket at $socket (start the local stack: node bin/codeb.js stack up)"
  PODMAN=(podman --url "unix://$socket")
  where="the Podman API at $socket"
else
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/scripts/podman/containers.conf}"
  PODMAN=(podman)
  where="this machine's Podman storage (CONTAINERS_CONF=$CONTAINERS_CONF)"
fi

# ------------------------------------------------------------------ inputs and their hash
# The app, this script, the node binary, its libraries and every file of the copied packages.
node_real="$(readlink -f "$NODE_BIN")"
mapfile -t libs < <(ldd "$node_real" | awk '/=> \//{print $3} /^[ \t]*\/[^ ]+ \(/{print $1}' | sort -u)
[ "${#libs[@]}" -gt 0 ] || die "ldd found no libraries for $node_real"
# Runtime dependency closure of pg and ioredis, resolved the way node does (nested node_modules first).
mapfile -t pkgs < <(node - "$ROOT" <<'EOF'
const fs = require('fs'), path = require('path');
const root = process.argv[2];
const seen = new Set();
function resolveFrom(dir, name) {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (d === root || d === path.dirname(d)) return null;
  }
}
function walk(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const required = Object.keys(pj.dependencies || {});
  const optional = Object.keys(pj.optionalDependencies || {});
  for (const name of [...required, ...optional]) {
    const found = resolveFrom(dir, name);
    if (found) walk(found);
    else if (required.includes(name) && !optional.includes(name)) throw new Error(`${pj.name} needs ${name}, which is not installed`);
  }
}
for (const name of ['pg', 'ioredis']) walk(path.join(root, 'node_modules', name));
for (const d of [...seen].sort()) console.log(path.relative(root, d));
EOF
)
inputs_hash="$(
  {
    echo "format 1"
    sha256sum scripts/build-test-images.sh test/app/app.js test/app/package.json "$node_real" "${libs[@]}" "$BUSYBOX"
    for p in "${pkgs[@]}"; do find "$p" -type f -not -path '*/node_modules/*/node_modules/*' -print0 | sort -z | xargs -0 sha256sum; done
  } | sha256sum | cut -c1-32
)"

if [ "$force" = 0 ]; then
  refs=(); for v in "${VERSIONS[@]}"; do refs+=("$REPO:$v"); done
  labels="$("${PODMAN[@]}" image inspect --format "{{index .Labels \"$LABEL_KEY\"}}" "${refs[@]}" 2>/dev/null || true)"
  if [ "$(grep -cx "$inputs_hash" <<<"$labels")" = "${#VERSIONS[@]}" ]; then
    say "up to date in $where: $REPO:{${VERSIONS[*]}} (inputs $inputs_hash)"
    exit 0
  fi
fi

# ------------------------------------------------------------------ root filesystem
started=$(date +%s%N)
rootfs="$BUILD_DIR/rootfs"
rm -rf "$BUILD_DIR"
mkdir -p "$rootfs"/{etc,tmp,app,usr/bin}
chmod 1777 "$rootfs/tmp"
# Mirror the host's merged-/usr symlinks (/lib -> usr/lib, ...) so library paths resolve alike.
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$rootfs/$d"; fi
done
copy_to_rootfs() { # $1: absolute path on the host; copied (dereferenced) to the same place
  local dir; dir="$(readlink -f "$(dirname "$1")")"
  mkdir -p "$rootfs$dir"
  cp -L "$1" "$rootfs$dir/$(basename "$1")"
}
copy_to_rootfs "$node_real"
[ -e "$rootfs/usr/bin/node" ] || ln -s "$node_real" "$rootfs/usr/bin/node"
for lib in "${libs[@]}"; do copy_to_rootfs "$lib"; done
# busybox (static) as /usr/bin/busybox only, no applet links: the tenant-isolation tests run its
# ping (a raw socket, which a container without NET_RAW must not get) and nc inside containers.
cp "$BUSYBOX" "$rootfs/usr/bin/busybox"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
: >"$rootfs/etc/hosts"
: >"$rootfs/etc/resolv.conf"
cp test/app/app.js test/app/package.json "$rootfs/app/"
for p in "${pkgs[@]}"; do
  mkdir -p "$rootfs/app/$(dirname "$p")"
  # Nested node_modules are copied as packages of their own (they are in the closure if needed).
  (cd "$p" && find . -path './node_modules' -prune -o -type f -print0) |
    (cd "$p" && tar --null -cf - -T -) | (mkdir -p "$rootfs/app/$p" && tar -C "$rootfs/app/$p" -xf -)
done

tarball="$BUILD_DIR/rootfs.tar"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$tarball" .
size_mb=$(( $(stat -c %s "$tarball") / 1048576 ))

# ------------------------------------------------------------------ import, one tag per version
old_ids=()
for v in "${VERSIONS[@]}"; do
  id="$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$REPO:$v" 2>/dev/null || true)"
  [ -n "$id" ] && old_ids+=("$id")
done
for v in "${VERSIONS[@]}"; do
  "${PODMAN[@]}" import --quiet \
    --change 'CMD ["/usr/bin/node","/app/app.js"]' \
    --change 'WORKDIR /app' \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change "ENV VERSION=$v" \
    --change 'ENV NODE_ENV=production' \
    --change "LABEL $LABEL_KEY=$inputs_hash" \
    --change "LABEL org.opencontainers.image.version=$v" \
    --change 'LABEL org.opencontainers.image.title=codeb-testapp' \
    "$tarball" "$REPO:$v" >/dev/null
done

# The image must actually start: node inside it prints its version.
if ! out="$("${PODMAN[@]}" run --rm --network none "$REPO:v1" /usr/bin/node -e 'process.stdout.write(process.version + " " + process.env.VERSION)' 2>&1)"; then
  die "the built image does not run node: $out"
fi
rm -rf "$rootfs" "$tarball"
# The images these tags pointed at before are untagged now: remove them unless a container uses them.
for id in "${old_ids[@]}"; do "${PODMAN[@]}" rmi "$id" >/dev/null 2>&1 || true; done
ms=$(( ($(date +%s%N) - started) / 1000000 ))
say "built $REPO:{${VERSIONS[*]}} into $where in ${ms} ms (rootfs ${size_mb} MiB, node ${out%% *}, inputs $inputs_hash)"
