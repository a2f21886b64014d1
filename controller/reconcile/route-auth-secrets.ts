/**
 * Basic-auth hashes of a deployment's routes in the secret store (docs/deploy.md, "Route
 * authentication"). A hash given in the manifest is copied there; `generate: true` makes a password
 * once, keeps only its bcrypt hash, and hands the password back to be shown once by the command
 * that made it: it is written nowhere. A service that no longer has basic auth loses its hash, so
 * adding it back generates a new password.
 */
import { hashFingerprint } from '../deploy/host-routes.js';
import type { Deployment } from '../manifest/types.js';
import { registerSecret } from '../redact.js';
import { basicAuthSecret } from './desired.js';
import { generateSecret, type SecretStore, type SecretValues } from './secrets.js';

export interface GeneratedPassword {
  service: string;
  user: string;
  password: string;
}

/** bcrypt cost of generated passwords: about 50-100 ms per check in plain JS; the router caches successes. */
export const BCRYPT_COST = 10;

/** The fingerprint of each service's hash as it will be after apply ('fp:none': not generated yet). Pure. */
export function authFingerprints(d: Pick<Deployment, 'services'>, stored: SecretValues): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of d.services) {
    const b = s.auth?.basic;
    if (!b) continue;
    const hash = b.passwordHash ?? stored[basicAuthSecret(s.name)];
    out[s.name] = hash ? hashFingerprint(hash) : 'fp:none';
  }
  return out;
}

/** Put the hashes the deployment needs in the store (and drop the ones it no longer has); returns passwords made now. */
export async function ensureRouteAuth(store: SecretStore, d: Pick<Deployment, 'projectId' | 'env' | 'services'>): Promise<GeneratedPassword[]> {
  const stored = store.load(d.projectId, d.env);
  const changes: Record<string, string | null> = {};
  const made: GeneratedPassword[] = [];
  const wanted = new Set<string>();
  for (const s of d.services) {
    const b = s.type === 'web' ? s.auth?.basic : null;
    if (!b) continue;
    const key = basicAuthSecret(s.name);
    wanted.add(key);
    if (b.passwordHash) changes[key] = b.passwordHash;
    else if (!stored[key]) {
      const password = generateSecret();
      registerSecret(password);
      const { hash } = await import('bcryptjs');
      changes[key] = await hash(password, BCRYPT_COST);
      made.push({ service: s.name, user: b.user, password });
    }
  }
  for (const key of Object.keys(stored)) if (key.startsWith(basicAuthSecret('')) && !wanted.has(key)) changes[key] = null;
  await store.update(d.projectId, d.env, changes);
  return made;
}
