import { describe, expect, it } from 'vitest';
import { chooseEarlierDeploy } from '../../controller/deploy/rollback.js';
import type { EnvironmentRecord, HistoryEntry } from '../../controller/registry/types.js';

const deploy = (version: string, result: HistoryEntry['result'] = 'ok'): HistoryEntry => ({
  at: `2026-01-0${version.slice(1)}T00:00:00Z`,
  by: 'a@b',
  action: 'deploy',
  result,
  detail: { version, images: { web: `localhost/app:${version}` } },
});

function rec(history: HistoryEntry[], liveImage: string): EnvironmentRecord {
  return {
    env: 'production', status: 'running', createdAt: '', updatedAt: '', domain: null, aliases: [], ports: {}, redisDb: null, redisUser: null,
    database: null, databaseRole: null, bucket: null, buckets: [], liveSlot: 'green', health: { status: 'healthy', lastCheck: null }, history,
    containers: [{ service: 'web', slot: 'green', name: 'x', id: null, image: liveImage, hostPort: 1, state: 'running', startedAt: null }],
  };
}

describe('chooseEarlierDeploy', () => {
  const h = [deploy('v1'), deploy('v2'), deploy('v3', 'failed'), deploy('v4', 'rolled-back')];
  it('without --to: the newest successful deploy whose images differ from the live ones', () => {
    expect(chooseEarlierDeploy(rec(h, 'localhost/app:v2')).version).toBe('v1');
    expect(chooseEarlierDeploy(rec([...h, deploy('v5')], 'localhost/app:v5')).version).toBe('v2');
  });
  it('with --to: by version or by image tag, successful deploys only', () => {
    expect(chooseEarlierDeploy(rec(h, 'localhost/app:v2'), 'v1').images).toEqual({ web: 'localhost/app:v1' });
    expect(() => chooseEarlierDeploy(rec(h, 'localhost/app:v2'), 'v3')).toThrow(/No successful deploy of version "v3".*/);
    expect(() => chooseEarlierDeploy(rec(h, 'localhost/app:v2'), 'v3')).toThrow(expect.objectContaining({ hint: expect.stringContaining('v1, v2') }));
  });
  it('a stateful container (blue, while web is live in green) counts as running now', () => {
    const both = (v: string): HistoryEntry => ({ ...deploy(v), detail: { version: v, images: { web: `localhost/app:${v}`, db: 'localhost/db:v1' } } });
    const r = rec([both('v1'), both('v2')], 'localhost/app:v2');
    r.containers.push({ service: 'db', slot: 'blue', name: 'y', id: null, image: 'localhost/db:v1', hostPort: 2, state: 'running', startedAt: null, stateful: true });
    expect(chooseEarlierDeploy(r).version).toBe('v1');
  });
  it('says so when there is nothing earlier', () => {
    expect(() => chooseEarlierDeploy(rec([deploy('v1')], 'localhost/app:v1'))).toThrow(/No earlier successful deploy/);
  });
});
