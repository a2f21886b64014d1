/**
 * Long-lived connections across a blue-green switch, through Caddy and the forwarder, as
 * docs/deploy.md promises: a server-sent event stream and a websocket opened before a v1 -> v2
 * switch stay on v1 (still receiving v1 messages) while new requests get v2; retiring v1
 * (`codeb gc --now`) ends them cleanly so clients reconnect to v2; streams to v2 are untouched.
 * And that another project's route being added and removed does not touch them (no Caddy reload).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeployEnv, manifest, openSse, openWs, show, uniqueId, until, type SseStream, type WsStream } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('4200-4249'));
const id = uniqueId('st');
const other = uniqueId('st-other');
const domain = `${id}.localhost`;
const caddyPort = () => t.settings.caddy.httpPort;
const file = t.write('project.yaml', manifest({ id, database: false, features: '  websockets: true\n' }));
const otherFile = t.write('other.yaml', manifest({ id: other, database: false }));
const versions = (m: Array<{ version: string }>) => [...new Set(m.map((x) => x.version))];

describe('server-sent events and websockets across a switch', () => {
  let sse1: SseStream, ws1: WsStream, sse2: SseStream, ws2: WsStream;

  beforeAll(async () => {
    await t.privateProxy();
    const r = await t.codeb('apply', file);
    expect(r.code, show(r)).toBe(0);
  });
  afterAll(async () => {
    for (const s of [sse1, ws1, sse2, ws2]) s?.close();
    const a = await t.codeb('destroy', id, '--delete-data', '--yes');
    const b = await t.codeb('destroy', other, '--delete-data', '--yes');
    await t.close();
    expect(a.code, show(a)).toBe(0);
    // The test destroys the other project itself; this only cleans up after a failure.
    expect(b.code === 0 || b.stderr.includes('No deployment'), show(b)).toBe(true);
  });

  it('streams opened on v1 keep receiving v1 after the switch; new requests and streams get v2', async () => {
    sse1 = await openSse(caddyPort(), domain);
    ws1 = await openWs(caddyPort(), domain);
    expect(sse1.status).toBe(200);
    await until(() => sse1.events.length >= 3 && ws1.messages.length >= 3, 10_000, 'v1 stream messages');

    const r = await t.codeb('deploy', file, '--image', 'localhost/codeb-testapp:v2');
    expect(r.code, show(r)).toBe(0);
    const switched = Date.now();
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');

    sse2 = await openSse(caddyPort(), domain);
    ws2 = await openWs(caddyPort(), domain);
    await until(() => sse1.events.some((e) => e.at > switched + 500) && ws1.messages.some((m) => m.at > switched + 500), 10_000, 'v1 messages after the switch');
    await until(() => sse2.events.length >= 3 && ws2.messages.length >= 3, 10_000, 'v2 stream messages');

    expect(sse1.state).toBe('open');
    expect(ws1.state).toBe('open');
    expect(versions(sse1.events)).toEqual(['v1']);
    expect(versions(ws1.messages)).toEqual(['v1']);
    expect(versions(sse2.events)).toEqual(['v2']);
    expect(versions(ws2.messages)).toEqual(['v2']);
    // No gap: the v1 stream kept its 100 ms rhythm through the switch (numbers consecutive).
    expect(sse1.events.map((e) => e.n)).toEqual(sse1.events.map((_, i) => sse1.events[0]!.n + i));
  });

  it('gc --now (retiring v1) ends the v1 stream and websocket cleanly; the v2 ones go on', async () => {
    const r = await t.codeb('gc', '--now', '--json');
    expect(r.code, show(r)).toBe(0);
    expect((JSON.parse(r.stdout) as { retired: Array<{ project: string; slot: string }> }).retired).toEqual([expect.objectContaining({ project: id, slot: 'blue' })]);
    await Promise.race([Promise.all([sse1.closed, ws1.closed]), new Promise((_, rej) => setTimeout(() => rej(new Error('v1 streams still open 10 s after gc')), 10_000))]);
    // An SSE response ended with its last chunk (EventSource reconnects), a websocket close frame
    // "normal closure" from the app, then the TCP end: nothing was cut.
    expect(sse1.state).toBe('end');
    expect(ws1.closeCode).toBe(1000);
    expect(ws1.state).toBe('end');

    const n2 = sse2.events.length;
    const m2 = ws2.messages.length;
    await until(() => sse2.events.length > n2 + 3 && ws2.messages.length > m2 + 3, 10_000, 'v2 messages after gc');
    expect(sse2.state).toBe('open');
    expect(ws2.state).toBe('open');
    // A client reconnecting now lands on v2.
    const again = await openSse(caddyPort(), domain);
    await until(() => again.events.length >= 1, 10_000, 'a reconnected stream');
    expect(again.events[0]!.version).toBe('v2');
    again.close();
  });

  it("another project's route created and removed (its apply and destroy) leaves the open streams alone", async () => {
    // Before host routing this was a Caddy config change, which on 2.6 closes every stream of every
    // site; now it is a change in the forwarder's host table and Caddy's config stays the same.
    for (const cmd of [['apply', otherFile], ['destroy', other, '--yes', '--delete-data']]) {
      const n2 = sse2.events.length;
      const m2 = ws2.messages.length;
      const r = await t.codeb(...cmd);
      expect(r.code, show(r)).toBe(0);
      await until(() => sse2.events.length > n2 + 3 && ws2.messages.length > m2 + 3, 10_000, `v2 messages after ${cmd[0]} of the other project`);
      expect(sse2.state).toBe('open');
      expect(ws2.state).toBe('open');
    }
    // No gap in the event sequence: nothing was cut and reconnected.
    expect(sse2.events.map((e) => e.n)).toEqual(sse2.events.map((_, i) => sse2.events[0]!.n + i));
  });
});
