/**
 * Per-service host names and route auth (issue 12, items 2 and 3), deployed for real through this
 * file's own Caddy and forwarder (app ports: slot-0 slice 5500-5549):
 *   - a web app at the main domain and a gateway at a host name of its own, both blue-green: each
 *     is deployed in turn while a bounded client keeps asking both through Caddy;
 *   - the gateway's basic auth with a generated password: 401 without or with wrong credentials,
 *     200 with them; the password is printed once and is in no file, registry, plan or later output;
 *   - a second project naming the gateway's host name is refused at plan and apply (exit 2, naming
 *     the owner) and the gateway keeps serving;
 *   - a client allow-list: 403 for an address outside it, 200 inside (Caddy's own view of the client);
 *   - `registry inspect` shows the host names and that the route has auth, never the hash.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bcrypt from 'bcryptjs';
import { DeployEnv, show, uniqueId } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('5500-5549'));
const id = uniqueId('rt');
const other = uniqueId('rt2');
const main = `${id}.localhost`;
const api = `api-${id}.localhost`;

const health = `    healthCheck:
      http:
        path: /api/health
        timeout: 1s
        interval: 200ms
        successes: 3
`;

function project(gatewayAuth: string): string {
  return `apiVersion: codeb/v1
project:
  id: ${id}
environment:
  domain: ${main}
services:
  web:
    image: localhost/codeb-testapp:v1
    port: 8080
    env:
      HEALTH_PATH: /web-only
${health}  gateway:
    image: localhost/codeb-testapp:v1
    port: 8080
    domains: [${api}]
    env:
      HEALTH_PATH: /gateway-only
${gatewayAuth}${health}deploy:
  healthGate:
    deadline: 120s
    verifyAfterSwitch: 2
    watchAfterSwitch: 1s
  drain: 1s
`;
}
const generated = t.write('project.yaml', project('    auth:\n      basic:\n        user: admin\n        generate: true\n'));
const thief = t.write(
  'thief.yaml',
  `apiVersion: codeb/v1
project:
  id: ${other}
environment:
  domain: ${other}.localhost
services:
  web:
    image: localhost/codeb-testapp:v1
    port: 8080
    domains: [${api}]
`,
);

/** GET through this file's Caddy with a Host and optional basic credentials (a kept-alive agent when given). */
function via(host: string, path: string, auth?: string, agent: Agent | false = false): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host };
    if (auth) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
    const req = request({ host: '127.0.0.1', port: t.settings.caddy.httpPort, path, agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Every file under a folder (the test's registry, secrets, manifests, proxy logs and tables). */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return files(p);
    return e.isFile() && statSync(p).size < 64 << 20 ? [p] : [];
  });
}
const holding = (needle: string) => files(t.dir).filter((f) => readFileSync(f).includes(needle));

/**
 * Requests to both sites, one after another on kept-alive connections, until `until` settles
 * (bounded: at most 3000 requests). Every answer that is not 200 is a failure.
 */
async function loadDuring<T>(until: Promise<T>, gatewayAuth: string): Promise<{ result: T; sent: number; failed: string[]; versions: Set<string> }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  let done = false;
  const settled = until.finally(() => (done = true));
  const failed: string[] = [];
  const versions = new Set<string>();
  let sent = 0;
  while (!done && sent < 3000) {
    for (const [host, auth] of [[main, undefined], [api, gatewayAuth]] as const) {
      sent++;
      const r = await via(host, '/api/version', auth, agent).catch((e: Error) => ({ status: 0, body: e.message, headers: {} }));
      if (r.status !== 200) failed.push(`${host}: ${r.status} ${r.body.slice(0, 80)}`);
      else versions.add(`${host === main ? 'web' : 'gateway'} ${(JSON.parse(r.body) as { version: string }).version}`);
    }
  }
  agent.destroy();
  return { result: await settled, sent, failed, versions };
}

describe('a gateway at a host name of its own and a web app at the main domain, with route auth', () => {
  let password = '';
  let applyOutput = '';

  beforeAll(async () => {
    const r = await t.up(generated);
    applyOutput = r.stdout + r.stderr;
    password = /Basic-auth password for gateway \(user admin\), shown only this once[^:]*: (\S+)/.exec(r.stdout)?.[1] ?? '';
  });
  afterAll(async () => {
    await t.codeb('destroy', other, '--delete-data', '--yes'); // a test destroys it; this cleans up after a failure
    await t.down(id);
  });

  it('the apply that makes the password prints it once; the gateway answers 401 without it and 200 with it', async () => {
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(applyOutput.split(password).length - 1).toBe(1);
    const none = await via(api, '/');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Basic realm="gateway", charset="UTF-8"');
    expect((await via(api, '/', `admin:${password}x`)).status).toBe(401);
    expect((await via(api, '/', `root:${password}`)).status).toBe(401);
    const ok = await via(api, '/', `admin:${password}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('hello from v1\n');
  });

  it('the main domain reaches the web app, open; the gateway is not served there', async () => {
    const web = await via(main, '/api/version');
    expect(web.status).toBe(200);
    // Different sites, different containers: each answers only its own HEALTH_PATH.
    expect((await via(main, '/web-only')).status).toBe(200);
    expect((await via(main, '/gateway-only')).status).toBe(404);
    expect((await via(api, '/gateway-only', `admin:${password}`)).status).toBe(200);
    expect((await via(api, '/web-only', `admin:${password}`)).status).toBe(404);
  });

  it('a second apply changes nothing and shows no password; plan shows none either', async () => {
    const again = await t.codeb('apply', generated);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toMatch(/No changes/);
    const plan = await t.codeb('plan', generated, '--json');
    expect(plan.code, show(plan)).toBe(0);
    for (const out of [again.stdout, again.stderr, plan.stdout, plan.stderr]) expect(out).not.toContain(password);
  });

  it('the password is in no file; the hash only in the secret store and the forwarder table; inspect names the user, never the hash', async () => {
    expect(holding(password)).toEqual([]);
    const secrets = holding('routeAuth:gateway');
    const store = secrets.find((f) => f.endsWith('.secrets.json'));
    expect(store, secrets.join(', ')).toBeDefined();
    const hash = (JSON.parse(readFileSync(store!, 'utf8')) as Record<string, string>)['routeAuth:gateway']!;
    expect(await bcrypt.compare(password, hash)).toBe(true);
    const table = files(t.dir).find((f) => f.endsWith('/forwarder/table.json'))!;
    expect(holding(hash).sort()).toEqual([store!, table].sort());
    expect((statSync(table).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(store!).mode & 0o777).toString(8)).toBe('600');
    const text = await t.codeb('registry', 'inspect', id);
    expect(text.code, show(text)).toBe(0);
    expect(text.stdout).toContain(`route       gateway at ${api} (tls off); basic auth (user admin)`);
    const json = await t.codeb('registry', 'inspect', id, '--json');
    for (const out of [text.stdout, json.stdout]) {
      expect(out).not.toContain(hash);
      expect(out).not.toContain(password);
    }
    expect((JSON.parse(json.stdout) as { environments: Record<string, { serviceRoutes: unknown }> }).environments.production!.serviceRoutes).toEqual({
      gateway: { domains: [api], tls: 'off', path: null, basicAuthUser: 'admin', allow: [] },
    });
  });

  it('each service deployed blue-green in turn: both sites answer every request', async () => {
    const auth = `admin:${password}`;
    const gw = await loadDuring(t.codeb('deploy', generated, '--image', 'gateway=localhost/codeb-testapp:v2'), auth);
    expect(gw.result.code, show(gw.result)).toBe(0);
    expect(gw.failed).toEqual([]);
    expect(gw.sent).toBeGreaterThan(2);
    expect(JSON.parse((await via(api, '/api/version', auth)).body).version).toBe('v2');
    expect(JSON.parse((await via(main, '/api/version')).body).version).toBe('v1');
    const web = await loadDuring(t.codeb('deploy', generated, '--image', 'gateway=localhost/codeb-testapp:v2', '--image', 'web=localhost/codeb-testapp:v3'), auth);
    expect(web.result.code, show(web.result)).toBe(0);
    expect(web.failed).toEqual([]);
    expect(JSON.parse((await via(main, '/api/version')).body).version).toBe('v3');
    expect(JSON.parse((await via(api, '/api/version', auth)).body).version).toBe('v2');
    for (const out of [gw.result.stdout, gw.result.stderr, web.result.stdout, web.result.stderr]) expect(out).not.toContain(password);
    // The password still works after both switches (the route was not touched).
    expect((await via(api, '/', auth)).status).toBe(200);
  });

  it("a second project naming the gateway's host name is refused at plan and apply, naming the owner; the gateway keeps serving", async () => {
    for (const cmd of ['plan', 'apply']) {
      const r = await t.codeb(cmd, thief);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain(`${other} (production) asks for host name (service web) ${api}, which project "${id}" (production) already serves (service gateway)`);
    }
    const list = await t.codeb('registry', 'list', '--json');
    expect(list.stdout).not.toContain(other);
    expect((await via(api, '/', `admin:${password}`)).status).toBe(200);
    expect((await via(`${other}.localhost`, '/')).status).toBe(404);
  });

  it('an allow-list: 403 outside it, 200 inside it (the client address as Caddy saw it); a manifest bcrypt hash replaces the generated one', async () => {
    const hash = await bcrypt.hash('correct horse', 4);
    const outside = t.write('outside.yaml', project(`    auth:\n      basic:\n        user: ops\n        passwordHash: "${hash}"\n      allow: [192.0.2.0/24]\n`));
    const r1 = await t.codeb('apply', outside);
    expect(r1.code, show(r1)).toBe(0);
    expect(r1.stdout + r1.stderr).not.toContain(hash);
    // A client that claims to be inside the list is not believed: only Caddy's view counts.
    const spoofed = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: t.settings.caddy.httpPort, path: '/', agent: false, headers: { host: api, 'x-forwarded-for': '192.0.2.7', 'x-codeb-client': '192.0.2.7' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(spoofed).toBe(403);
    expect((await via(api, '/', 'ops:correct horse')).status).toBe(403);
    const inside = t.write('inside.yaml', project(`    auth:\n      basic:\n        user: ops\n        passwordHash: "${hash}"\n      allow: [127.0.0.0/8]\n`));
    const r2 = await t.codeb('apply', inside);
    expect(r2.code, show(r2)).toBe(0);
    expect((await via(api, '/', 'ops:correct horse')).status).toBe(200);
    expect((await via(api, '/', `admin:${password}`)).status).toBe(401);
    expect((await via(api, '/')).status).toBe(401);
    // The web app on the main domain is open throughout.
    expect((await via(main, '/')).status).toBe(200);
  });
});
