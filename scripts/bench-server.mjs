#!/usr/bin/env node
/**
 * `npm run bench:server [-- ROUNDS] [--suite bookworm] [--json]`: how long `codeb server init` takes
 * on a bare server and on a ready one, and reboot to serving (a project applied with the host's
 * default runtime, from the host's restart until it answers through Caddy again, no codeb command
 * run), medians over ROUNDS (default 3) fresh test hosts (a booted rootfs with systemd and sshd on
 * its own Podman network, test/helpers/server-host.ts; packages from its apt cache, no mirror):
 * Debian 13 (Quadlet, radosgw) by default, Debian 12 with `--suite bookworm` (Podman 4.3's plain
 * systemd units, the s3rver stand-in; a Node 20 copied in first, as its operator would install
 * one). Phases live in scripts/bench/server-entry.ts (PHASES).
 *
 * Needs root and the built CLI (`npm ci`). The test host rootfs is built on first use (~2 min).
 * CODEB_BENCH_HOST_SLOT (default 200): the /24 of 10.71.0.0/16 (CODEB_TEST_HOST_POOL) the hosts use.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleTs } from './lib/bundle-ts.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (process.getuid?.() !== 0) {
  console.error('bench:server needs root (test hosts are privileged containers on overlay mounts).');
  process.exit(1);
}
const out = await bundleTs(join(root, 'scripts/bench/server-entry.ts'), join(root, '.codeb/bench/server.mjs'));
const r = spawnSync(process.execPath, [out, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
