/**
 * The Podman runtime over Podman's Docker-compatible API (dockerode on a unix socket): the local
 * stack's `podman system service`, or a server's podman.socket. Each container joins its
 * deployment's own network, publishes its slot port on 127.0.0.1 and runs without capabilities
 * (see docs/runtime.md, "Networks"). Podman itself restarts crashed containers
 * (RestartPolicy); codeb probes health from outside, so no container health check is set here.
 *
 * Secrets: the deployment's env file is read at start and passed as Env (the API has no env-file
 * option). Its values are never logged: every message and every output this driver returns passes
 * through redactText, with the env file's secret values registered first.
 */
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { PassThrough, type Duplex } from 'node:stream';
// dockerode (with docker-modem, ssh2, grpc and protobufjs) costs ~150 ms to load: it is loaded on
// the first call that changes something; observing (inspect, list) is a plain GET on the socket.
import type Docker from 'dockerode';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import { parseEnvFile } from '../providers/files.js';
import { redactText, registerSecret } from '../redact.js';
import { LABEL, READ_ONLY_TMPFS, type ContainerSpec, type ContainerState, type Runtime } from './types.js';

/** Exit code reported when exec or runOnce runs out of time (as coreutils `timeout` does). */
export const TIMEOUT_EXIT_CODE = 124;
/** At most this much output is kept from exec, runOnce and logsTail. */
const MAX_OUTPUT_BYTES = 64 * 1024;
const PULL_TIMEOUT_MS = 120_000;
const BUILD_HINT = 'No container registry is reachable from here, so images must be built on this machine: for the test images run `bash scripts/build-test-images.sh`; for your own, build or load them into this Podman (`podman build` / `podman load`) or push them to a registry the server can reach.';
const SECRET_KEY = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|_KEY$)/i;

interface ApiError extends Error {
  statusCode?: number;
  code?: string;
  json?: { message?: string; cause?: string } | null;
}

const isApiError = (err: unknown): err is ApiError => err instanceof Error;
const statusOf = (err: unknown): number | undefined => (isApiError(err) ? err.statusCode : undefined);

/** The API's own message (without dockerode's "(HTTP code 404) no such container -" prefix). */
function apiMessage(err: unknown): string {
  if (!isApiError(err)) return String(err);
  const m = err.json?.message ?? err.message;
  return redactText(String(m).trim());
}

/** Registers the secret values of an env file (keys that look secret, passwords inside URLs). */
export function registerEnvFileSecrets(vars: Record<string, string>): void {
  for (const [k, v] of Object.entries(vars)) {
    if (SECRET_KEY.test(k)) registerSecret(v);
    try {
      const u = new URL(v);
      if (u.password) {
        registerSecret(u.password);
        registerSecret(decodeURIComponent(u.password));
      }
    } catch {
      /* not a URL */
    }
  }
}

/** Split Docker's multiplexed stream format (8-byte frame headers) into one text. */
export function demuxBuffer(buf: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && buf[i]! <= 2 && buf[i + 1] === 0 && buf[i + 2] === 0 && buf[i + 3] === 0) {
    const len = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  // Not multiplexed (a TTY container), or a trailing partial frame: keep the rest as it is.
  if (i < buf.length) parts.push(buf.subarray(i));
  return Buffer.concat(parts).toString('utf8');
}

function tail(text: string, maxBytes = MAX_OUTPUT_BYTES): string {
  return text.length > maxBytes ? text.slice(text.length - maxBytes) : text;
}

const ZERO_TIME = /^0001-01-01/;

export class PodmanApiRuntime implements Runtime {
  readonly kind = 'podman' as const;
  private client?: Promise<Docker>;
  private closed = false;

  constructor(readonly socketPath: string) {}

  private docker(): Promise<Docker> {
    return (this.client ??= import('dockerode').then((m) => new m.default({ socketPath: this.socketPath })));
  }

  /** GET a JSON document from the API; a non-2xx answer throws an ApiError with its status and body. */
  private getJson<T>(path: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method: 'GET', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('error', reject);
        res.on('end', () => {
          let json: unknown = null;
          try {
            json = JSON.parse(body);
          } catch {
            /* not JSON: reported below */
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300 && json !== null) return resolve(json as T);
          const err: ApiError = new Error(`(HTTP code ${status}) ${body.trim().slice(0, 500)}`);
          err.statusCode = status;
          err.json = json as ApiError['json'];
          reject(err);
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  // ---------------------------------------------------------------- plumbing

  /** Run one API call; an unreachable socket becomes ServiceUnavailableError. */
  private async api<T>(call: () => Promise<T>): Promise<T> {
    if (this.closed) throw new CodebError('The Podman runtime was closed.');
    try {
      return await call();
    } catch (err) {
      const code = isApiError(err) ? err.code : undefined;
      if (code && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE', 'ENOTSOCK'].includes(code)) {
        throw new ServiceUnavailableError('Podman API', this.socketPath, new Error(redactText(`${code}: ${(err as Error).message}`)), 'codeb stack up');
      }
      throw err;
    }
  }

  private fail(what: string, err: unknown, hint?: string): CodebError {
    if (err instanceof CodebError) return err;
    return new CodebError(redactText(`${what}: ${apiMessage(err)}`), { hint });
  }

  /** Environment for the container: the env file's variables, then the spec's (which win, as with podman --env-file/--env). */
  private environment(spec: ContainerSpec): string[] {
    const env: Record<string, string> = {};
    if (spec.envFile) {
      if (!existsSync(spec.envFile)) {
        throw new CodebError(`The env file ${spec.envFile} for ${spec.name} does not exist.`, {
          hint: 'Run `codeb apply` for this project first: it writes the env file with the connection details.',
        });
      }
      let vars: Record<string, string>;
      try {
        vars = parseEnvFile(readFileSync(spec.envFile, 'utf8'));
      } catch (err) {
        throw new CodebError(`Cannot read the env file ${spec.envFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}.`, { hint: 'codeb must run as the user that owns the secrets folder.' });
      }
      registerEnvFileSecrets(vars);
      Object.assign(env, vars);
    }
    Object.assign(env, spec.environment);
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
  }

  private createOptions(spec: ContainerSpec, overrides: { restart?: ContainerSpec['restart']; extraLabels?: Record<string, string> } = {}): Docker.ContainerCreateOptions {
    const restart = overrides.restart ?? spec.restart;
    return {
      name: spec.name,
      Image: spec.image,
      ...(spec.command ? { Cmd: spec.command } : {}),
      Env: this.environment(spec),
      Labels: { ...spec.labels, ...overrides.extraLabels },
      StopTimeout: spec.stopTimeoutSeconds,
      // The slot port, published on the host's loopback only (the forwarder and health probes).
      ...(spec.port !== null ? { ExposedPorts: { [`${spec.port}/tcp`]: {} } } : {}),
      HostConfig: {
        NetworkMode: spec.network,
        ...(spec.port !== null ? { PortBindings: { [`${spec.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(spec.port) }] } } : {}),
        CapDrop: spec.security.capDrop,
        ...(spec.security.capAdd.length ? { CapAdd: spec.security.capAdd } : {}),
        SecurityOpt: spec.security.noNewPrivileges ? ['no-new-privileges'] : [],
        ...(spec.security.readOnlyRootfs ? { ReadonlyRootfs: true, Tmpfs: { [READ_ONLY_TMPFS]: '' } } : {}),
        // Named volumes (made by the volume provider first): no :U, Podman chowns a new volume's
        // root to the container's user once, at its first mount (providers/volume.ts).
        ...(spec.volumes.length ? { Mounts: spec.volumes.map((v) => ({ Type: 'volume' as const, Source: v.volume, Target: v.path, ReadOnly: false })) } : {}),
        NanoCpus: Math.round(spec.cpu * 1e9),
        Memory: spec.memoryBytes,
        RestartPolicy: { Name: restart, MaximumRetryCount: restart === 'on-failure' ? 5 : 0 },
        // Podman 4.3's compat API maps this to --log-driver/--log-opt: k8s-file rotates at
        // max-size (one file); max-file is Docker's json-file option, kept for Docker engines.
        LogConfig: { Type: 'k8s-file', Config: { 'max-size': String(spec.logs.maxSizeBytes) } },
      },
    };
  }

  // ---------------------------------------------------------------- Runtime

  async ensureImage(image: string): Promise<void> {
    try {
      await this.api(async () => (await this.docker()).getImage(image).inspect());
      return;
    } catch (err) {
      if (err instanceof CodebError) throw err;
      if (statusOf(err) !== 404) throw this.fail(`Cannot inspect image ${image}`, err);
    }
    try {
      await this.api(async () => {
        const docker = await this.docker();
        const stream = await docker.pull(image);
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            (stream as unknown as { destroy?: () => void }).destroy?.();
            reject(new Error(`no answer within ${PULL_TIMEOUT_MS / 1000} s`));
          }, PULL_TIMEOUT_MS);
          docker.modem.followProgress(stream, (e: Error | null, events: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
            clearTimeout(timer);
            const failed = events?.find((ev) => ev.error || ev.errorDetail);
            if (e) reject(e);
            else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
            else resolve();
          });
        });
      });
    } catch (err) {
      if (err instanceof ServiceUnavailableError) throw err;
      const why = err instanceof Error ? apiMessage(err) : String(err);
      throw new CodebError(`Image ${image} is not present in Podman (${this.socketPath}) and pulling it failed: ${why.split('\n')[0]}`, { hint: BUILD_HINT });
    }
    // A pull that "succeeded" without the image (some compat versions) is still a failure.
    try {
      await this.api(async () => (await this.docker()).getImage(image).inspect());
    } catch (err) {
      throw this.fail(`Image ${image} is still not present after pulling`, err, BUILD_HINT);
    }
  }

  async start(spec: ContainerSpec): Promise<ContainerState> {
    const existing = await this.inspect(spec.name);
    if (existing?.running) {
      if (existing.labels[LABEL.specHash] === spec.labels[LABEL.specHash] && existing.image === spec.image) return existing;
      throw new CodebError(`Container ${spec.name} is already running a different spec.`, { hint: 'Remove it first (the other slot keeps serving), then start the new one.' });
    }
    if (existing) await this.remove(spec.name, 0);
    const options = this.createOptions(spec);
    const container = await this.create(spec, options);
    try {
      await this.api(() => container.start());
    } catch (err) {
      const logs = await this.logsTail(spec.name, 20).catch(() => '');
      await this.remove(spec.name, 0).catch(() => {});
      throw this.fail(`Container ${spec.name} did not start`, err, logs ? `Its last output:\n${logs}` : undefined);
    }
    const state = await this.inspect(spec.name);
    if (!state) throw new CodebError(`Container ${spec.name} vanished right after it started.`, { hint: 'Check `podman events` and the image\'s command.' });
    return state;
  }

  private async create(spec: ContainerSpec, options: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.api(async () => (await this.docker()).createContainer(options));
      } catch (err) {
        if (err instanceof CodebError) throw err;
        const status = statusOf(err);
        if (status === 409 && attempt === 0) {
          await this.remove(spec.name, 0); // a leftover created between inspect and create
          continue;
        }
        if (status === 404) {
          throw new CodebError(`Image ${spec.image} for ${spec.name} is not present in Podman.`, { hint: BUILD_HINT });
        }
        throw this.fail(`Cannot create container ${spec.name}`, err);
      }
    }
  }

  async remove(name: string, stopTimeoutSeconds = 10): Promise<void> {
    const c = (await this.docker()).getContainer(name);
    try {
      await this.api(() => c.stop({ t: stopTimeoutSeconds }));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      const status = statusOf(err);
      if (status === 404) return;
      // 304: already stopped. Anything else: removal below forces it.
    }
    try {
      await this.api(() => c.remove({ force: true, v: true }));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      const status = statusOf(err);
      if (status === 404) return;
      if (status === 409 && /already in progress/i.test(apiMessage(err))) return;
      throw this.fail(`Cannot remove container ${name}`, err);
    }
  }

  async halt(name: string): Promise<boolean> {
    const state = await this.inspect(name);
    if (!state?.running) return false;
    const c = (await this.docker()).getContainer(name);
    try {
      await this.api(() => c.stop({ t: 30 }));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      if (statusOf(err) !== 304) throw this.fail(`Cannot stop container ${name}`, err); // 304: already stopped
    }
    return true;
  }

  async resume(name: string): Promise<ContainerState> {
    const c = (await this.docker()).getContainer(name);
    try {
      await this.api(() => c.start());
    } catch (err) {
      if (err instanceof CodebError) throw err;
      if (statusOf(err) !== 304) throw this.fail(`Cannot start container ${name} again`, err); // 304: already running
    }
    const state = await this.inspect(name);
    if (!state?.running) throw new CodebError(`Container ${name} stopped again right after it was started.`, { hint: `Its last output: \`podman logs --tail 20 ${name}\`.` });
    return state;
  }

  async inspect(name: string): Promise<ContainerState | null> {
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.api(() => this.getJson<Docker.ContainerInspectInfo>(`/containers/${encodeURIComponent(name)}/json`));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      // A container removed while Podman looks it up answers 500 "no such container": gone too.
      if (statusOf(err) === 404 || /no such container/i.test(apiMessage(err))) return null;
      throw this.fail(`Cannot inspect container ${name}`, err);
    }
    const st = info.State;
    return {
      name: info.Name.replace(/^\//, ''),
      id: info.Id,
      image: info.Config.Image,
      running: st.Running,
      status: st.Status,
      restartCount: info.RestartCount ?? 0,
      startedAt: st.StartedAt && !ZERO_TIME.test(st.StartedAt) ? st.StartedAt : null,
      exitCode: st.Running ? null : st.ExitCode ?? null,
      labels: info.Config.Labels ?? {},
    };
  }

  async list(labels: Record<string, string>): Promise<ContainerState[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    let items: Docker.ContainerInfo[];
    try {
      items = await this.api(() => this.getJson<Docker.ContainerInfo[]>(`/containers/json?all=true&filters=${encodeURIComponent(JSON.stringify(filters))}`));
    } catch (err) {
      throw this.fail('Cannot list containers', err);
    }
    const out: ContainerState[] = [];
    for (const item of items) {
      // The filter is the API's; check again so a runtime that ignores it cannot widen the set.
      if (!Object.entries(labels).every(([k, v]) => item.Labels?.[k] === v)) continue;
      const state = await this.inspect(item.Id);
      if (state) out.push(state);
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async exec(name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    let exec: Docker.Exec;
    try {
      exec = await this.api(async () => (await this.docker()).getContainer(name).exec({ Cmd: command, AttachStdout: true, AttachStderr: true, Tty: false }));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      const status = statusOf(err);
      if (status === 404) throw new CodebError(`Container ${name} does not exist.`);
      if (status === 409) throw new CodebError(`Container ${name} is not running, so nothing can run in it.`);
      throw this.fail(`Cannot run a command in ${name}`, err);
    }
    const stream: Duplex = await this.api(() => exec.start({ hijack: true, stdin: false }));
    const chunks: Buffer[] = [];
    let size = 0;
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      while (size > MAX_OUTPUT_BYTES * 2 && chunks.length > 1) size -= chunks.shift()!.length;
    });
    (await this.docker()).modem.demuxStream(stream, sink, sink);
    const finished = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        stream.destroy();
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      stream.on('end', done);
      stream.on('close', done);
      stream.on('error', done);
    });
    const output = redactText(tail(Buffer.concat(chunks).toString('utf8')));
    if (!finished) return { exitCode: TIMEOUT_EXIT_CODE, output: `${output}\n(codeb: no result within ${timeoutMs} ms)`.trimStart() };
    // The exit code can lag the stream's end by a moment.
    for (let i = 0; i < 50; i++) {
      const info = await this.api(() => exec.inspect());
      if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return { exitCode: info.ExitCode, output };
      await new Promise((r) => setTimeout(r, 20));
    }
    return { exitCode: TIMEOUT_EXIT_CODE, output: `${output}\n(codeb: the command's exit code never arrived)`.trimStart() };
  }

  async runOnce(spec: ContainerSpec, timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    await this.remove(spec.name, 0);
    const options = this.createOptions(spec, { restart: 'no' });
    // Kept after exit (AutoRemove false) so its exit code and output can be read, removed below.
    const container = await this.create(spec, { ...options, HostConfig: { ...options.HostConfig, AutoRemove: false } });
    try {
      await this.api(() => container.start());
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      let exitCode: number;
      try {
        const res = (await this.api(() => container.wait({ condition: 'not-running', abortSignal: controller.signal }))) as { StatusCode: number };
        exitCode = res.StatusCode;
      } catch (err) {
        if (!controller.signal.aborted) throw this.fail(`Waiting for ${spec.name} failed`, err);
        await this.api(() => container.kill()).catch(() => {});
        exitCode = TIMEOUT_EXIT_CODE;
      } finally {
        clearTimeout(timer);
      }
      const output = await this.logsTail(spec.name, 200).catch(() => '');
      return exitCode === TIMEOUT_EXIT_CODE && controller.signal.aborted
        ? { exitCode, output: `${output}\n(codeb: ${spec.name} did not finish within ${timeoutMs} ms and was stopped)`.trimStart() }
        : { exitCode, output };
    } catch (err) {
      throw this.fail(`Release container ${spec.name} failed to run`, err);
    } finally {
      await this.remove(spec.name, 0).catch(() => {});
    }
  }

  async logsTail(name: string, lines: number): Promise<string> {
    let buf: Buffer;
    try {
      buf = await this.api(async () => (await this.docker()).getContainer(name).logs({ stdout: true, stderr: true, tail: lines, follow: false }));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      if (statusOf(err) === 404) throw new CodebError(`Container ${name} does not exist.`);
      throw this.fail(`Cannot read the logs of ${name}`, err);
    }
    return redactText(tail(demuxBuffer(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf)))));
  }

  /** Podman's version (`4.3.1`), e.g. to choose between Quadlet and plain systemd units. */
  async version(): Promise<string> {
    const v = await this.api(async () => (await this.docker()).version());
    return v.Version;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
