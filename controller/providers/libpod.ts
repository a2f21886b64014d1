/**
 * One request to Podman's own (libpod) API on the runtime's socket: networks and volumes, whose
 * options (bridge name, isolate, labels on volumes) the Docker-compatible API cannot set.
 */
import { request } from 'node:http';
import { ServiceUnavailableError } from '../errors.js';

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
