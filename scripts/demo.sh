#!/usr/bin/env bash
# The main job on one machine, from a fresh clone: install what is missing (Debian packages when
# root, npm ci), build, start the embedded local stack, build the example app's image (no registry
# needed), apply manifests/food-delivery-app.yaml, and show the project answering through Caddy.
# Safe to run again: the second apply changes nothing.
#
#   bash scripts/demo.sh                 # state in $CODEB_HOME (default ~/.codeb)
#   MANIFEST=manifests/minimal.yaml bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MANIFEST="${MANIFEST:-manifests/food-delivery-app.yaml}"
codeb() { node bin/codeb.js "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "setup (Debian packages, npm ci)"
bash scripts/setup.sh
npm run --silent build

step "local stack"
# Its ports (base 20000 unless CODEB_STACK_PORT_BASE) are never the test suite's (npm test's slots
# use bases 13000-14900: ports 18432-23900); should anything else hold them, say who before starting anything.
node scripts/lib/stack-ports.mjs demo-check "${CODEB_HOME:-$HOME/.codeb}" "${CODEB_TEST_HOME:-$PWD/.codeb/test-home}"
codeb stack up

step "example image (built locally: no registry is reachable here)"
bash scripts/build-test-images.sh

step "codeb apply $MANIFEST"
codeb apply "$MANIFEST"

project="$(codeb validate "$MANIFEST" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).files[0].project))')"
domain="$(codeb registry inspect "$project" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const e=Object.values(JSON.parse(s).environments)[0];console.log(e.domain)})')"
port="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).caddy.httpPort)' "${CODEB_SETTINGS:-${CODEB_HOME:-$HOME/.codeb}/settings.json}")"

step "the project answers through Caddy: curl -H 'Host: $domain' http://127.0.0.1:$port/"
curl -sS -i -H "Host: $domain" "http://127.0.0.1:$port/" | sed -n '1p;/^Strict-Transport/p;/^X-Frame/p;/^X-Content/p;$p'
echo
curl -sS -H "Host: $domain" "http://127.0.0.1:$port/api/health"
echo

step "what the registry holds"
codeb registry list
