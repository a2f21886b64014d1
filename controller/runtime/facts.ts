/**
 * The facts runtime selection needs, gathered on the machine codeb runs on (the server itself when
 * run over SSH). Cheap on the local stack: without systemd as PID 1 no process is started.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { RuntimeFacts } from './select.js';
import { PODMAN_BIN } from './units.js';

/** sd_booted(3): systemd created this folder at boot, so it is PID 1. */
export const SYSTEMD_RUNTIME_DIR = '/run/systemd/system';

export function podmanVersion(bin = PODMAN_BIN): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(bin, ['--version'], { timeout: 15_000 }, (err, stdout) => {
      if (err) return resolve(null);
      const m = /(\d+\.\d+(?:\.\d+)?)/.exec(stdout);
      resolve(m ? m[1]! : null);
    });
  });
}

export async function gatherRuntimeFacts(): Promise<RuntimeFacts> {
  const systemdPid1 = existsSync(SYSTEMD_RUNTIME_DIR);
  // Without systemd no answer depends on the version: skip the process start.
  return { systemdPid1, podmanVersion: systemdPid1 ? await podmanVersion() : null };
}
