/**
 * The `quadlet` and `systemd` runtimes: every slot container is a systemd unit on the server, so
 * systemd supervises it and starts it again at boot.
 *   - quadlet: <container>.container in /etc/containers/systemd/ (Podman >= 4.4); systemd's Quadlet
 *     generator makes <container>.service of it at `daemon-reload`, and its [Install] section
 *     (WantedBy=multi-user.target) makes it start at boot.
 *   - systemd: <container>.service in /etc/systemd/system/ running `podman run` (Podman 4.3),
 *     enabled with `systemctl enable`.
 * Start and stop go through systemctl; reads (inspect, list, exec, logs), images and one-off
 * release containers go through the server's Podman API socket (the same containers and storage:
 * both are root's Podman). Removing a container removes its unit, whichever kind wrote it, so a
 * retired slot never comes back at boot. See docs/runtime.md, "Drivers" and "After a reboot".
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CodebError } from '../errors.js';
import { redactText } from '../redact.js';
import type { PodmanApiRuntime } from './podman-api.js';
import { LABEL, type ContainerSpec, type ContainerState, type Runtime } from './types.js';
import { renderQuadlet, renderSystemdUnit, type UnitKind } from './units.js';

export const QUADLET_DIR = '/etc/containers/systemd';
export const SYSTEMD_DIR = '/etc/systemd/system';
/** How long a started unit may take until its container runs (image present, no pull). */
const START_TIMEOUT_MS = 60_000;
const SYSTEMCTL_TIMEOUT_MS = 120_000;

export interface UnitDirs {
  quadlet: string;
  systemd: string;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], timeoutMs = SYSTEMCTL_TIMEOUT_MS): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? Number((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === 1 ? err.message : '') });
    });
  });
}

/** The systemd service a container's unit runs as (both kinds): <container>.service. */
export const serviceName = (container: string) => `${container}.service`;

/** Where each kind keeps a container's unit file. */
export function unitFiles(container: string, dirs: UnitDirs = { quadlet: QUADLET_DIR, systemd: SYSTEMD_DIR }): Record<UnitKind, string> {
  return { quadlet: join(dirs.quadlet, `${container}.container`), systemd: join(dirs.systemd, serviceName(container)) };
}

export class UnitRuntime implements Runtime {
  constructor(
    readonly kind: UnitKind,
    /** The server's Podman API (reads, images, release containers). */
    private readonly api: PodmanApiRuntime,
    private readonly dirs: UnitDirs = { quadlet: QUADLET_DIR, systemd: SYSTEMD_DIR },
  ) {}

  private async systemctl(args: string[], what: string): Promise<string> {
    const r = await run('systemctl', args);
    if (r.code !== 0) throw new CodebError(redactText(`${what}: systemctl ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`));
    return r.stdout;
  }

  private async journalTail(container: string, lines = 20): Promise<string> {
    const r = await run('journalctl', ['--unit', serviceName(container), '--lines', String(lines), '--no-pager', '--output', 'cat']);
    return redactText(r.stdout.trim());
  }

  ensureImage(image: string): Promise<void> {
    return this.api.ensureImage(image);
  }

  async start(spec: ContainerSpec): Promise<ContainerState> {
    const existing = await this.api.inspect(spec.name);
    const unit = this.kind === 'quadlet' ? renderQuadlet(spec) : renderSystemdUnit(spec);
    const file = unitFiles(spec.name, this.dirs)[this.kind];
    if (existing?.running) {
      const same = existing.labels[LABEL.specHash] === spec.labels[LABEL.specHash] && existing.image === spec.image;
      if (same && existsSync(file) && readFileSync(file, 'utf8') === unit.content) return existing;
      if (!same) throw new CodebError(`Container ${spec.name} is already running a different spec.`, { hint: 'Remove it first (the other slot keeps serving), then start the new one.' });
    }
    // A stopped leftover, or a unit of the other kind (the server's runtime changed): replaced.
    if (existing || Object.values(unitFiles(spec.name, this.dirs)).some((f) => existsSync(f))) await this.remove(spec.name, 0);

    const tmp = `${file}.codeb-tmp`;
    writeFileSync(tmp, unit.content, { mode: 0o644 });
    renameSync(tmp, file);
    await this.systemctl(['daemon-reload'], `Reloading systemd for ${spec.name}`);
    // Quadlet units are wanted at boot by their [Install] section (the generator links them);
    // plain units are enabled like any other service.
    const startArgs = this.kind === 'systemd' ? ['enable', '--now', serviceName(spec.name)] : ['start', serviceName(spec.name)];
    const started = await run('systemctl', startArgs);
    const state = started.code === 0 ? await this.waitRunning(spec.name) : null;
    if (!state) {
      const journal = await this.journalTail(spec.name);
      const why = redactText((started.stderr || started.stdout).trim().split('\n')[0] ?? '');
      await this.remove(spec.name, 0).catch(() => {});
      const notGenerated = this.kind === 'quadlet' && /not found/i.test(why);
      throw new CodebError(`Container ${spec.name} did not start through its ${this.kind} unit${why ? ` (${why})` : ''}.`, {
        hint: notGenerated
          ? `Quadlet generated no service from ${file}: \`/usr/lib/systemd/system-generators/podman-system-generator --dryrun\` on the server says why.`
          : journal
            ? `Its journal (journalctl -u ${serviceName(spec.name)}):\n${journal}`
            : `See journalctl -u ${serviceName(spec.name)} on the server.`,
      });
    }
    return state;
  }

  /** The container once it runs, or null when the unit ended or the time ran out. */
  private async waitRunning(name: string): Promise<ContainerState | null> {
    const until = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < until) {
      const st = await this.api.inspect(name);
      if (st?.running) return st;
      const active = await run('systemctl', ['is-active', serviceName(name)]);
      const state = active.stdout.trim();
      if (state === 'failed' || state === 'inactive') return null;
      await new Promise((r) => setTimeout(r, 100));
    }
    return null;
  }

  /**
   * Stop the unit (its ExecStop gives the container its stop timeout), remove the unit file of
   * either kind and reload systemd; then remove any container of that name left outside a unit.
   */
  async remove(name: string, stopTimeoutSeconds = 10): Promise<void> {
    const files = unitFiles(name, this.dirs);
    const present = (Object.keys(files) as UnitKind[]).filter((k) => existsSync(files[k]));
    if (present.length) {
      const unit = serviceName(name);
      if (present.includes('systemd')) await run('systemctl', ['disable', unit]);
      // Stopped through systemd, so its Restart= does not start it again.
      const stopped = await run('systemctl', ['stop', unit], (stopTimeoutSeconds + 30) * 1000);
      if (stopped.code !== 0) throw new CodebError(redactText(`Cannot stop ${unit}: ${(stopped.stderr || stopped.stdout).trim()}`), { hint: `See journalctl -u ${unit} on the server.` });
      for (const k of present) {
        try {
          unlinkSync(files[k]);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      await this.systemctl(['daemon-reload'], `Reloading systemd after removing ${name}`);
      await run('systemctl', ['reset-failed', unit]);
    }
    await this.api.remove(name, stopTimeoutSeconds);
  }

  /** The unit file of either kind that runs this container, or null (a container outside units). */
  private unitFileOf(name: string): string | null {
    return Object.values(unitFiles(name, this.dirs)).find((f) => existsSync(f)) ?? null;
  }

  /** Through systemd: `podman stop` would end the unit's main process and its Restart= could start it again mid-restore. */
  async halt(name: string): Promise<boolean> {
    if (!this.unitFileOf(name)) return this.api.halt(name);
    const running = (await this.api.inspect(name))?.running ?? false;
    if (running) await this.systemctl(['stop', serviceName(name)], `Stopping ${name}`);
    return running;
  }

  async resume(name: string): Promise<ContainerState> {
    if (!this.unitFileOf(name)) return this.api.resume(name);
    await this.systemctl(['start', serviceName(name)], `Starting ${name} again`);
    const state = await this.waitRunning(name);
    if (!state) {
      const journal = await this.journalTail(name);
      throw new CodebError(`Container ${name} did not start again through its unit.`, { hint: journal ? `Its journal (journalctl -u ${serviceName(name)}):\n${journal}` : `See journalctl -u ${serviceName(name)} on the server.` });
    }
    return state;
  }

  inspect(name: string): Promise<ContainerState | null> {
    return this.api.inspect(name);
  }

  list(labels: Record<string, string>): Promise<ContainerState[]> {
    return this.api.list(labels);
  }

  exec(name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    return this.api.exec(name, command, timeoutMs);
  }

  /** One-off release containers need no supervision and no boot start: the API runs them. */
  runOnce(spec: ContainerSpec, timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    return this.api.runOnce(spec, timeoutMs);
  }

  logsTail(name: string, lines: number): Promise<string> {
    return this.api.logsTail(name, lines);
  }

  close(): Promise<void> {
    return this.api.close();
  }
}
