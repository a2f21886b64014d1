import { describe, expect, it } from 'vitest';
import { makeResource, type Observed } from '../../controller/reconcile/model.js';
import { diffSpec, hasChanges, planApply, planDestroy, summarize } from '../../controller/reconcile/plan.js';

const role = makeResource('postgres.role', 'shop_db_owner', { login: true, secret: 'postgres' }, [], true);
const db = makeResource('postgres.database', 'shop_db', { owner: 'shop_db_owner', publicConnect: false, extensions: ['pg_trgm'] }, [role.key], true);
const slot = makeResource('redis.slot', '2', { db: 2, owner: 'shop/production' });
const route = makeResource('proxy.route', 'codeb-shop-production', { domains: ['shop.localhost'], upstreams: [{ path: null, port: 3000, service: 'web' }] });

describe('planApply', () => {
  const cases: Array<{ name: string; observed: Observed[]; ops: string[]; changed?: string[] }> = [
    { name: 'nothing exists: everything is created in order', observed: [], ops: ['create', 'create', 'create', 'create'] },
    {
      name: 'everything matches: nothing to do',
      observed: [
        { key: role.key, exists: true, spec: { login: true } },
        { key: db.key, exists: true, spec: { owner: 'shop_db_owner', publicConnect: false, extensions: ['pg_trgm'] } },
        { key: slot.key, exists: true, spec: { db: 2, owner: 'shop/production' } },
        { key: route.key, exists: true, spec: route.spec },
      ],
      ops: ['unchanged', 'unchanged', 'unchanged', 'unchanged'],
    },
    {
      name: 'drift: a missing extension and a changed upstream port are updates with the fields named',
      observed: [
        { key: role.key, exists: true, spec: { login: true } },
        { key: db.key, exists: true, spec: { owner: 'shop_db_owner', publicConnect: false, extensions: [] } },
        { key: slot.key, exists: true, spec: { db: 2, owner: 'shop/production' } },
        { key: route.key, exists: true, spec: { ...route.spec, upstreams: [{ path: null, port: 3001, service: 'web' }] } },
      ],
      ops: ['unchanged', 'update', 'unchanged', 'update'],
      changed: ['extensions', 'upstreams'],
    },
    {
      name: 'a resource removed behind our back is created again',
      observed: [
        { key: role.key, exists: true, spec: { login: true } },
        { key: db.key, exists: false },
        { key: slot.key, exists: true, spec: { db: 2, owner: 'shop/production' } },
        { key: route.key, exists: true, spec: route.spec },
      ],
      ops: ['unchanged', 'create', 'unchanged', 'unchanged'],
    },
    {
      name: 'a slot owned by someone else blocks the plan',
      observed: [{ key: slot.key, exists: true, spec: { db: 2, owner: 'other/production' }, conflict: 'Redis DB 2 is claimed by other/production' }],
      ops: ['create', 'create', 'blocked', 'create'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const actions = planApply([role, db, slot, route], c.observed);
      expect(actions.map((a) => a.op)).toEqual(c.ops);
      expect(actions.map((a) => a.key)).toEqual([role.key, db.key, slot.key, route.key]);
      if (c.changed) expect(actions.flatMap((a) => a.changes.map((ch) => ch.field))).toEqual(c.changed);
    });
  }

  it('never compares instruction fields (secret names) with what is observed', () => {
    expect(diffSpec({ login: true, secret: 'postgres' }, { login: true })).toEqual([]);
    expect(diffSpec({ login: true }, { login: false })).toEqual([{ field: 'login', from: false, to: true }]);
  });

  it('summarises and detects pending changes', () => {
    const actions = planApply([role, db], [{ key: role.key, exists: true, spec: { login: true } }]);
    expect(summarize(actions)).toMatchObject({ create: 1, update: 0, unchanged: 1 });
    expect(hasChanges(actions)).toBe(true);
    expect(hasChanges(planApply([role], [{ key: role.key, exists: true, spec: { login: true } }]))).toBe(false);
  });
});

describe('planDestroy', () => {
  const all: Observed[] = [role, db, slot, route].map((r) => ({ key: r.key, exists: true, spec: r.spec }));
  it('deletes in reverse order and keeps data by default', () => {
    const actions = planDestroy([role, db, slot, route], all, false);
    expect(actions.map((a) => [a.kind, a.op])).toEqual([
      ['proxy.route', 'delete'],
      ['redis.slot', 'delete'],
      ['postgres.database', 'keep'],
      ['postgres.role', 'keep'],
    ]);
  });
  it('deletes data only when asked', () => {
    expect(planDestroy([role, db, slot, route], all, true).map((a) => a.op)).toEqual(['delete', 'delete', 'delete', 'delete']);
  });
  it('treats what is already gone as done', () => {
    expect(planDestroy([route], [{ key: route.key, exists: false }], false).map((a) => a.op)).toEqual(['unchanged']);
  });
});
