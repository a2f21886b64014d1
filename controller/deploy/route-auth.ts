/**
 * Route authentication in the host router: an optional client address allow-list (403) and basic
 * auth checked against a bcrypt hash (401 with WWW-Authenticate). The client address is the one
 * Caddy saw (CLIENT_HEADER, which Caddy's static route sets and no client can: the router socket
 * is reachable by Caddy only), never X-Forwarded-For.
 *
 * A bcrypt check costs tens of milliseconds on purpose, so successful checks are remembered in
 * memory (a digest of hash and credentials, never the password) and a keep-alive client pays once.
 * Wrong passwords cannot be remembered that way, so the checks that run at once are capped: a
 * flood of wrong passwords at one project's route gets 503s instead of taking the CPU the shared
 * forwarder needs for every other site.
 */
import { createHash } from 'node:crypto';
import { inCidr, parseCidr } from '../runtime/network.js';
import type { UpstreamAuth } from './host-routes.js';

/**
 * The decision before any password check (pure). `challenge`: no Basic credentials were sent (a
 * browser's first request), so 401 at once: a bcrypt check there would cost the shared forwarder
 * tens of milliseconds of CPU per request and tell nobody anything.
 */
export type AuthDecision = { kind: 'open' } | { kind: 'refused'; status: 403 } | { kind: 'challenge' } | { kind: 'password'; user: string; password: string | null; hash: string };

/** user and password of a `Basic` Authorization header, or null when it is not one. */
export function parseBasic(header: string | undefined): { user: string; password: string } | null {
  if (!header) return null;
  const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return null;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon === -1 ? null : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Is the client address inside one of the CIDRs? An empty list lets everyone in; no address, no one. */
export function addressAllowed(address: string | null, allow: string[]): boolean {
  if (allow.length === 0) return true;
  if (!address) return false;
  return allow.some((c) => inCidr(address, parseCidr(c)));
}

/** What a request must pass for an upstream (pure): the allow-list first, then the password. */
export function authDecision(auth: UpstreamAuth | undefined, client: string | null, authorization: string | undefined): AuthDecision {
  if (!auth) return { kind: 'open' };
  if (!addressAllowed(client, auth.allow)) return { kind: 'refused', status: 403 };
  if (!auth.basic) return { kind: 'open' };
  const given = parseBasic(authorization);
  if (!given) return { kind: 'challenge' };
  // A wrong user still costs a check below (null password): no timing tells which users exist.
  return { kind: 'password', user: auth.basic.user, password: given.user === auth.basic.user ? given.password : null, hash: auth.basic.hash };
}

/** The realm in WWW-Authenticate: the service name (what a browser shows in its prompt). */
export function challenge(service: string): string {
  return `Basic realm="${service.replace(/[^A-Za-z0-9._ -]/g, '')}", charset="UTF-8"`;
}

type Compare = (password: string, hash: string) => Promise<boolean>;

/** How many bcrypt checks run at once, and how many more may wait for their turn. */
export interface CheckLimits {
  running: number;
  waiting: number;
}

/** Two checks at once (one per core of a small server), a short queue behind them. */
export const DEFAULT_CHECK_LIMITS: CheckLimits = { running: 2, waiting: 32 };

/** verify's answer when the queue of checks is full: the router says 503, try again shortly. */
export const BUSY = 'busy' as const;

/**
 * Remembers successful checks (bounded; oldest forgotten first). Checks of the same credentials
 * that arrive while one runs (a browser opens several connections at once) share that one.
 * Remembered successes pass without a check even while the queue is full.
 */
export class VerifiedCache {
  private readonly ok = new Map<string, true>();
  private readonly running = new Map<string, Promise<boolean | typeof BUSY>>();
  private active = 0;
  private readonly queue: Array<() => void> = [];

  /** `compare`: bcrypt's (loaded on the first check); a test may wrap it to count checks. */
  constructor(
    private readonly max = 1000,
    private compare: Compare | null = null,
    private readonly limits: CheckLimits = DEFAULT_CHECK_LIMITS,
  ) {}

  private key(password: string, hash: string): string {
    return createHash('sha256').update(hash).update('\0').update(password).digest('hex');
  }

  has(password: string, hash: string): boolean {
    return this.ok.has(this.key(password, hash));
  }

  /** True when the password matches the bcrypt hash (a match is remembered); BUSY when too many checks wait. */
  async verify(password: string | null, hash: string): Promise<boolean | typeof BUSY> {
    if (password === null) {
      // A wrong user: a check all the same (no timing tells which users exist), never a match.
      return (await this.check('\0wrong user', hash)) === BUSY ? BUSY : false;
    }
    const key = this.key(password, hash);
    if (this.ok.has(key)) return true;
    let check = this.running.get(key);
    if (!check) {
      check = this.check(password, hash).finally(() => this.running.delete(key));
      this.running.set(key, check);
    }
    const good = await check;
    if (good === true && !this.ok.has(key)) {
      if (this.ok.size >= this.max) this.ok.delete(this.ok.keys().next().value!);
      this.ok.set(key, true);
    }
    return good;
  }

  /** One bcrypt check once a turn is free (a finished check hands its turn to the next in line). */
  private async check(password: string, hash: string): Promise<boolean | typeof BUSY> {
    if (this.active < this.limits.running) this.active++;
    else if (this.queue.length < this.limits.waiting) await new Promise<void>((turn) => this.queue.push(turn));
    else return BUSY;
    try {
      this.compare ??= (await import('bcryptjs')).compare;
      return await this.compare(password, hash).catch(() => false);
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }

  get size(): number {
    return this.ok.size;
  }
}
