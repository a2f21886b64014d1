/**
 * One request to Podman's own (libpod) API on the runtime's socket: networks and volumes, whose
 * options (bridge name, isolate, labels on volumes) the Docker-compatible API cannot set.
 */
import { request } from 'node:http';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import { LABEL } from '../runtime/types.js';

export const LIBPOD_API = '/v4.0.0/libpod';

export interface LibpodAnswer {
  status: number;
  json: unknown;
}

export function libpodCall(socketPath: string, method: string, path: string, body?: unknown): Promise<LibpodAnswer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath, method, path: `${LIBPOD_API}${path}`, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = { message: text.slice(0, 300) };
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => reject(new ServiceUnavailableError('Podman API', socketPath, err, 'codeb stack up')));
    if (data) req.write(data);
    req.end();
  });
}

/** The API's message of a failed answer. */
export function libpodMessage(json: unknown): string {
  const j = json as { message?: string; cause?: string } | null;
  return String(j?.message ?? j?.cause ?? 'no answer').trim();
}

/** Podman objects codeb labels with their owner (providers/network.ts, providers/volume.ts). */
export type LibpodObject = 'network' | 'volume';

/** An object's inspect answer, or null when there is none of that name. */
export async function libpodInspect<T>(socketPath: string, kind: LibpodObject, name: string): Promise<T | null> {
  const r = await libpodCall(socketPath, 'GET', `/${kind}s/${encodeURIComponent(name)}/json`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new CodebError(`Cannot inspect Podman ${kind} ${name}: ${libpodMessage(r.json)}`);
  return r.json as T;
}

/** Remove an object; one that is already gone is fine. `hint`: what to do when Podman refuses. */
export async function libpodRemove(socketPath: string, kind: LibpodObject, name: string, hint: string): Promise<void> {
  const r = await libpodCall(socketPath, 'DELETE', `/${kind}s/${encodeURIComponent(name)}`);
  if (r.status === 200 || r.status === 204 || r.status === 404) return;
  throw new CodebError(`Cannot remove Podman ${kind} ${name}: ${libpodMessage(r.json)}`, { hint });
}

/** `<project>/<env>` from codeb's labels; null when the object is not codeb's. */
export function labelOwner(labels: Record<string, string> | undefined): string | null {
  const l = labels ?? {};
  return l[LABEL.managed] === 'true' ? `${l[LABEL.project] ?? '?'}/${l[LABEL.env] ?? '?'}` : null;
}

/** The owner labels of an object codeb makes for `<project>/<env>`. */
export function ownerLabels(owner: string): Record<string, string> {
  const [project, env] = owner.split('/');
  return { [LABEL.managed]: 'true', [LABEL.project]: project!, [LABEL.env]: env! };
}

/**
 * Why an object of that name is not `want`'s (undefined when it is, or when no owner is asked):
 * apply and destroy both name the owner, so one that is not theirs is never used or removed.
 */
export function ownerConflict(kind: LibpodObject, name: string, owner: string | null, want: unknown): string | undefined {
  if (!want || owner === want) return undefined;
  return `Podman ${kind} ${name} exists but belongs to ${owner ?? 'something that is not codeb'}; codeb does not take it over`;
}
