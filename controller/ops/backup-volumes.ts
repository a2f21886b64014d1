/**
 * The volume part of backups (include: volumes): each volume of the deployment's stateful
 * services as one tar file, `volumes/<volume>.tar` in the backup (docs/backup.md). The tar is
 * made from the volume's folder on this host (Podman's Mountpoint; codeb runs where Podman
 * runs) with the system `tar` and argument arrays, while the service's container is paused, so
 * the copy is one point in time (as after a power cut: the service must cope with that, as
 * databases do). A restore halts the container through the runtime driver, empties the volume,
 * unpacks the tar and starts it again.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CodebError } from '../errors.js';
import { containerName } from '../manifest/names.js';
import { STATEFUL_SLOT } from '../deploy/stateful.js';
import { libpodCall, libpodMessage } from '../providers/libpod.js';
import { VolumeProvider } from '../providers/volume.js';
import { LABEL, type Runtime } from '../runtime/types.js';

/** The backup's key of a volume's tar. */
export const volumeKey = (volume: string) => `volumes/${volume}.tar`;

export interface VolumeSource {
  volume: string;
  mountpoint: string;
  /** The stateful container that mounts it (may not exist or run). */
  container: string;
}

/** Where a deployment's volume lives on this host and which container writes to it. */
export async function volumeSource(socketPath: string, project: string, env: string, volume: string): Promise<VolumeSource> {
  const v = await new VolumeProvider(socketPath).inspect(volume);
  if (!v) throw new CodebError(`Volume ${volume} of ${project} (${env}) does not exist in Podman.`, { hint: 'Apply the project first (`codeb apply`): apply creates its volumes.' });
  const labels = v.Labels ?? {};
  if (labels[LABEL.project] !== project || labels[LABEL.env] !== env || !labels[LABEL.service]) {
    throw new CodebError(`Volume ${volume} is not labelled as ${project} (${env})'s; refusing to back it up or restore it.`);
  }
  if (!v.Mountpoint) throw new CodebError(`Podman does not say where volume ${volume} is stored.`);
  try {
    accessSync(v.Mountpoint, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch {
    throw new CodebError(`Cannot read volume ${volume} at ${v.Mountpoint} as this user.`, { hint: 'Run codeb as the user that runs Podman (root on a server), where the volume folders are.' });
  }
  return { volume, mountpoint: v.Mountpoint, container: containerName(project, env, labels[LABEL.service]!, STATEFUL_SLOT) };
}

function tar(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('tar', args, { maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
      if (err) reject(new CodebError(`tar ${args[0]} failed: ${String(stderr).trim().split('\n').slice(-3).join('; ') || err.message}`, { hint: 'Check that tar is installed and the disk has room.' }));
      else resolve();
    });
  });
}

async function containerCall(socketPath: string, name: string, action: 'pause' | 'unpause'): Promise<void> {
  const r = await libpodCall(socketPath, 'POST', `/containers/${encodeURIComponent(name)}/${action}`);
  // 304: already in that state.
  if (r.status !== 204 && r.status !== 304) throw new CodebError(`Cannot ${action} container ${name}: ${libpodMessage(r.json)}`);
}

async function isRunning(socketPath: string, name: string): Promise<boolean | null> {
  const r = await libpodCall(socketPath, 'GET', `/containers/${encodeURIComponent(name)}/json`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new CodebError(`Cannot inspect container ${name}: ${libpodMessage(r.json)}`);
  return Boolean((r.json as { State?: { Running?: boolean } }).State?.Running);
}

/** Tar the volume into `file` (its writer paused meanwhile); returns how long it was paused (ms, 0 if not running). */
export async function tarVolume(socketPath: string, src: VolumeSource, file: string): Promise<number> {
  const running = await isRunning(socketPath, src.container);
  const t0 = performance.now();
  if (running) await containerCall(socketPath, src.container, 'pause');
  try {
    await tar(['--create', '--file', file, '--numeric-owner', '--directory', src.mountpoint, '.']);
  } finally {
    if (running) await containerCall(socketPath, src.container, 'unpause');
  }
  return running ? Math.round(performance.now() - t0) : 0;
}

/**
 * Replace the volume's contents with the tar's: its writer halted meanwhile through the runtime
 * driver (under a systemd unit through systemctl, so Restart= cannot start it mid-restore) and
 * started again if it ran.
 */
export async function untarVolume(runtime: Pick<Runtime, 'halt' | 'resume'>, src: VolumeSource, file: string): Promise<void> {
  const running = await runtime.halt(src.container);
  try {
    for (const entry of readdirSync(src.mountpoint)) rmSync(join(src.mountpoint, entry), { recursive: true, force: true });
    await tar(['--extract', '--file', file, '--numeric-owner', '--same-permissions', '--directory', src.mountpoint]);
  } finally {
    if (running) await runtime.resume(src.container);
  }
}
