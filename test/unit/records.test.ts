import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { allocate, AllocationError } from '../../controller/registry/allocate.js';
import { addTombstone, allocationRequest, findTombstone, recordAllocation, recordHosts, releaseKeepingData, removeTombstone } from '../../controller/registry/records.js';
import { placeholderRecord } from '../helpers/records.js';
import { validateRegistry } from '../../controller/generated/validators.js';
import { emptyRegistry, type EnvironmentRecord, type RegistryDocument, type Tombstone } from '../../controller/registry/types.js';
import { CodebError } from '../../controller/errors.js';

function deployment(id: string, features = 'features: { database: true, cache: true, storage: true }') {
  const src = `apiVersion: codeb/v1\nproject: { id: ${id} }\nservices:\n  web: { image: localhost/app:v1, port: 8080 }\n${features}\n`;
  const { manifest, issues } = validateLoaded(parseManifest(src, `${id}.yaml`));
  expect(issues).toEqual([]);
  return resolveDeployment(manifest!);
}

function record(doc: RegistryDocument, id: string, features?: string) {
  const d = deployment(id, features);
  return recordAllocation(doc, d, allocate(doc, allocationRequest(d)), '2026-01-01T00:00:00.000Z');
}

describe('recordAllocation', () => {
  it('refuses a project whose derived database name another project holds (food-app and food)', () => {
    const doc = emptyRegistry();
    expect(record(doc, 'food-app').database).toBe('food_db');
    expect(() => record(doc, 'food')).toThrow(AllocationError);
    expect(() => record(doc, 'food')).toThrow(/database food_db, which project "food-app" \(production\) already has/);
  });
  it('a derived name another project chose with database.name: says who has it, not that both derive it, and offers database.name', () => {
    const doc = emptyRegistry();
    expect(record(doc, 'kiosk', 'features: { database: true }\nenvironment: { database: { name: food_db } }').database).toBe('food_db');
    let err: AllocationError | undefined;
    try {
      record(doc, 'food');
    } catch (e) {
      err = e as AllocationError;
    }
    expect(err?.message).toBe('food (production) would use database food_db, which project "kiosk" (production) already has.');
    expect(err?.hint).toMatch(/^Give production a database of its own with database\.name \(environment\.database\.name, or environments\.production\.database\.name\), or choose a project id that derives other names/);
  });
  it('buckets: kept by their whole name when the manifest grows environments; a suffix with a dash is its own bucket', () => {
    const doc = emptyRegistry();
    const put = (features: string, env?: string) => {
      const src = `apiVersion: codeb/v1\nproject: { id: pics }\nservices:\n  web: { image: localhost/app:v1, port: 8080 }\n${features}\n`;
      const d = resolveDeployment(validateLoaded(parseManifest(src, 'pics.yaml')).manifest!, env);
      return recordAllocation(doc, d, allocate(doc, allocationRequest(d)), '2026-01-01T00:00:00.000Z').buckets;
    };
    expect(put('features: { storage: { buckets: [img] } }')).toEqual(['pics-img']);
    // img stays pics-img (not pics-prod-img) after staging is added; a-img is a new bucket, not pics-img again.
    expect(put('features: { storage: { buckets: [img, a-img] } }\nenvironments:\n  staging: { domain: staging.pics.localhost }')).toEqual(['pics-img', 'pics-prod-a-img']);
    expect(put('features: { storage: { buckets: [a-img] } }\nenvironments:\n  staging: { domain: staging.pics.localhost }', 'staging')).toEqual(['pics-staging-a-img']);
  });
  it('refuses a shared bucket name even without a database', () => {
    const doc = emptyRegistry();
    record(doc, 'shop-app', 'features: { storage: true }');
    expect(() => record(doc, 'shop', 'features: { storage: true }')).toThrow(/bucket shop-uploads/);
  });
  it('lets a known deployment re-record its own names', () => {
    const doc = emptyRegistry();
    const first = record(doc, 'shop');
    expect(record(doc, 'shop')).toMatchObject({ database: first.database, buckets: first.buckets, redisUser: first.redisUser });
  });
});

describe('domains and aliases are owned across projects and environments (issue 9, finding 4)', () => {
  function withDomains(id: string, extra: string) {
    const src = `apiVersion: codeb/v1\nproject: { id: ${id} }\nservices:\n  web: { image: localhost/app:v1, port: 8080 }\n${extra}\n`;
    const { manifest, issues } = validateLoaded(parseManifest(src, `${id}.yaml`));
    expect(issues).toEqual([]);
    return manifest!;
  }
  function put(doc: RegistryDocument, id: string, extra: string, env?: string) {
    const d = resolveDeployment(withDomains(id, extra), env);
    return recordAllocation(doc, d, allocate(doc, allocationRequest(d)), '2026-01-01T00:00:00.000Z');
  }
  function refusal(fn: () => unknown): CodebError {
    try {
      fn();
    } catch (e) {
      return e as CodebError;
    }
    throw new Error('expected a refusal');
  }

  it.each([
    ['the primary domain', 'environment: { domain: victim.example.com }', /domain victim\.example\.com, which project "victim" \(production\) already serves/],
    ['an alias of the victim', 'environment: { domain: attacker.example.com, aliases: [www.victim.example.com] }', /alias www\.victim\.example\.com, which project "victim" \(production\)/],
    ['the victim\'s domain as an alias', 'environment: { domain: attacker.example.com, aliases: [victim.example.com] }', /alias victim\.example\.com/],
  ])('refuses %s with exit 2, naming the holder, and leaves the registry as it was', (_what, extra, message) => {
    const doc = emptyRegistry();
    put(doc, 'victim', 'environment: { domain: victim.example.com, aliases: [www.victim.example.com] }');
    const before = structuredClone(doc);
    const err = refusal(() => put(doc, 'attacker', extra));
    expect(err).toBeInstanceOf(CodebError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(message);
    expect(doc.projects.attacker?.environments.production).toBeUndefined();
    expect(doc.projects.victim).toEqual(before.projects.victim);
  });

  it('refuses a non-primary environment of another project claiming the domain', () => {
    const doc = emptyRegistry();
    put(doc, 'victim', 'environment: { domain: victim.example.com }');
    const err = refusal(() => put(doc, 'attacker', 'environments:\n  staging: { domain: victim.example.com }', 'staging'));
    expect(err.message).toMatch(/project "victim" \(production\)/);
  });

  it('refuses two environments of one project sharing a domain, and lets a deployment keep its own', () => {
    const doc = emptyRegistry();
    put(doc, 'shop', 'environment: { domain: shop.example.com }');
    expect(put(doc, 'shop', 'environment: { domain: shop.example.com }').domain).toBe('shop.example.com');
    expect(refusal(() => put(doc, 'shop', 'environment: { domain: new.example.com }\nenvironments:\n  staging: { domain: shop.example.com }', 'staging')).exitCode).toBe(2);
  });
});

describe("services' own host names are owned like domains (issue 12)", () => {
  const gateway = (id: string, domain: string, hosts: string) => {
    const { manifest, issues } = validateLoaded(
      parseManifest(`apiVersion: codeb/v1\nproject: { id: ${id} }\nenvironment: { domain: ${domain} }\nservices:\n  web: { image: localhost/app:v1, port: 8080 }\n  gw: { image: localhost/app:v1, port: 8080, domains: [${hosts}] }\n`, `${id}.yaml`),
    );
    expect(issues).toEqual([]);
    return resolveDeployment(manifest!);
  };
  const put = (doc: RegistryDocument, d: ReturnType<typeof gateway>) => recordAllocation(doc, d, allocate(doc, allocationRequest(d)), '2026-01-01T00:00:00.000Z');

  it.each([
    ['a service host name of another project', 'b.example.com', 'api.a.example.com', /host name \(service gw\) api\.a\.example\.com, which project "aa" \(production\) already serves \(service gw\)/],
    ["another project's main domain as a service host name", 'b.example.com', 'a.example.com', /host name \(service gw\) a\.example\.com, which project "aa" \(production\) already serves\./],
    ["a main domain that is another project's service host name", 'api.a.example.com', 'api.b.example.com', /domain api\.a\.example\.com, which project "aa" \(production\) already serves \(service gw\)/],
  ])('refuses %s (exit 2, owner named) and leaves the registry as it was', (_what, domain, hosts, message) => {
    const doc = emptyRegistry();
    put(doc, gateway('aa', 'a.example.com', 'api.a.example.com'));
    const before = structuredClone(doc);
    let err: CodebError | undefined;
    try {
      put(doc, gateway('bb', domain, hosts));
    } catch (e) {
      err = e as CodebError;
    }
    expect(err?.exitCode).toBe(2);
    expect(err?.message).toMatch(message);
    expect(doc.projects.bb?.environments.production).toBeUndefined();
    expect(doc.projects.aa).toEqual(before.projects.aa);
  });

  it('records the host names and route auth (the user, no hash) and re-records its own', () => {
    const doc = emptyRegistry();
    const d = gateway('aa', 'a.example.com', 'api.a.example.com');
    d.services[1]!.auth = { basic: { user: 'ops', passwordHash: '$2b$04$' + 'a'.repeat(53) }, allow: ['10.0.0.0/8'] };
    const rec = put(doc, d);
    expect(rec.serviceRoutes).toEqual({ gw: { domains: ['api.a.example.com'], tls: 'auto', path: null, basicAuthUser: 'ops', allow: ['10.0.0.0/8'] } });
    expect(JSON.stringify(doc)).not.toContain('$2b$');
    expect(validateRegistry(doc), JSON.stringify(validateRegistry.errors)).toBe(true);
    expect(put(doc, d).serviceRoutes).toEqual(rec.serviceRoutes);
    expect(recordHosts(rec).map((h) => h.host)).toEqual(['a.example.com', 'api.a.example.com']);
  });
});

describe('tombstones: kept data stays claimed by its project and environment (issue 9, finding 5)', () => {
  const tomb = (over: Partial<Tombstone> = {}): Tombstone => ({
    project: 'food-app',
    env: 'production',
    destroyedAt: '2026-01-01T00:00:00.000Z',
    by: 'ops@host',
    database: 'food_db',
    databaseRole: 'food_db_owner',
    buckets: ['food-uploads'],
    ...over,
  });

  it('refuses another project deriving a kept name, naming the destroyed owner and how to free it', () => {
    const doc = emptyRegistry();
    addTombstone(doc, tomb());
    expect(() => record(doc, 'food')).toThrow(/database food_db, which destroyed project "food-app" \(production\) kept/);
    expect(() => record(doc, 'food', 'features: { storage: true }')).toThrow(/bucket food-uploads/);
    expect(doc.projects.food?.environments.production).toBeUndefined();
    expect(doc.tombstones).toHaveLength(1);
  });

  it('gives the same project and environment its kept names back and drops the tombstone', () => {
    const doc = emptyRegistry();
    addTombstone(doc, tomb({ database: 'food_db', databaseRole: 'food_db_owner' }));
    expect(record(doc, 'food-app')).toMatchObject({ database: 'food_db', databaseRole: 'food_db_owner', buckets: ['food-uploads'] });
    expect(doc.tombstones).toBeUndefined();
    expect(findTombstone(doc, 'food-app', 'production')).toBeUndefined();
  });

  it('validates against the registry schema', () => {
    const doc = emptyRegistry();
    addTombstone(doc, tomb());
    addTombstone(doc, tomb()); // one per project and environment
    expect(doc.tombstones).toHaveLength(1);
    expect(validateRegistry(doc)).toBe(true);
    removeTombstone(doc, 'food-app', 'production');
    expect(doc.tombstones).toBeUndefined();
  });
});

describe('releaseKeepingData (codeb registry release)', () => {
  const now = '2026-11-30T00:00:00.000Z';
  const docWith = (rec: EnvironmentRecord): RegistryDocument => {
    const doc = emptyRegistry();
    doc.projects.shop = { id: 'shop', name: 'shop', createdAt: now, updatedAt: now, environments: { production: rec } };
    return doc;
  };

  it('removes the deployment and keeps its database, role and buckets claimed by a tombstone', () => {
    const doc = docWith({ ...placeholderRecord({ now }), database: 'shop_db', databaseRole: 'shop_db_owner', bucket: 'shop-uploads', buckets: ['shop-uploads'] });
    expect(releaseKeepingData(doc, 'shop', 'production', { by: 'me@host', at: now })).toBe(true);
    expect(doc.projects.shop).toBeUndefined();
    expect(doc.tombstones).toEqual([{ project: 'shop', env: 'production', destroyedAt: now, by: 'me@host', database: 'shop_db', databaseRole: 'shop_db_owner', buckets: ['shop-uploads'] }]);
    expect(validateRegistry(doc)).toBe(true);
  });

  it('leaves no tombstone for a deployment that names no data, and says false for an unknown one', () => {
    const doc = docWith(placeholderRecord({ now }));
    expect(releaseKeepingData(doc, 'shop', 'production', { by: 'me', at: now })).toBe(true);
    expect(doc.tombstones ?? []).toEqual([]);
    expect(releaseKeepingData(doc, 'shop', 'production', { by: 'me', at: now })).toBe(false);
  });
});

describe('database.name: a per-environment database name the manifest chooses (issue 12, item 5)', () => {
  const src = (id: string, envs: string) =>
    `apiVersion: codeb/v1\nproject: { id: ${id} }\nenvironment: { name: production, database: { name: ${id}_prod } }\nenvironments:\n${envs}\nservices:\n  web: { image: localhost/app:v1, port: 8080 }\nfeatures: { database: true }\n`;
  function put(doc: RegistryDocument, text: string, env?: string) {
    const { manifest, issues } = validateLoaded(parseManifest(text, 'named.yaml'));
    expect(issues).toEqual([]);
    const d = resolveDeployment(manifest!, env);
    return recordAllocation(doc, d, allocate(doc, allocationRequest(d)), '2026-01-01T00:00:00.000Z');
  }
  function refusal(fn: () => unknown): CodebError {
    try {
      fn();
    } catch (e) {
      return e as CodebError;
    }
    throw new Error('expected a refusal');
  }

  it('uses the chosen name per environment, its role <name>_owner, and the derived name where none is chosen', () => {
    const doc = emptyRegistry();
    const text = src('dongne', '  staging: { database: { name: dongne_staging } }\n  development: {}');
    expect(put(doc, text)).toMatchObject({ database: 'dongne_prod', databaseRole: 'dongne_prod_owner' });
    expect(put(doc, text, 'staging')).toMatchObject({ database: 'dongne_staging', databaseRole: 'dongne_staging_owner' });
    expect(put(doc, text, 'development')).toMatchObject({ database: 'dongne_dev', databaseRole: 'dongne_dev_owner' });
  });

  it('refuses a name another project holds: exit 2, naming the owner', () => {
    const doc = emptyRegistry();
    put(doc, src('dongne', '  staging: {}'));
    const err = refusal(() => put(doc, src('other', '  staging: { database: { name: dongne_prod } }'), 'staging'));
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/other \(staging\) names database dongne_prod \(database\.name\), which project "dongne" \(production\) already has it/);
    expect(err.hint).toMatch(/Choose another database\.name/);
  });

  it('refuses a name a destroyed deployment kept (tombstone), naming it and how to free it', () => {
    const doc = emptyRegistry();
    addTombstone(doc, { project: 'gone', env: 'production', destroyedAt: '2026-01-01T00:00:00.000Z', by: 'ops@host', database: 'shared_name', databaseRole: 'shared_name_owner', buckets: [] });
    const err = refusal(() => put(doc, src('dongne', '  staging: { database: { name: shared_name } }'), 'staging'));
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/which destroyed project "gone" \(production\) kept it/);
    expect(err.hint).toMatch(/destroy gone --env production --delete-data/);
  });

  it('never changes the database of an existing deployment: a new name is refused with the ways out', () => {
    const doc = emptyRegistry();
    put(doc, src('dongne', '  staging: {}'), 'staging');
    expect(doc.projects.dongne!.environments.staging!.database).toBe('dongne_staging');
    const before = structuredClone(doc);
    const err = refusal(() => put(doc, src('dongne', '  staging: { database: { name: dongne_stg } }'), 'staging'));
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/has database dongne_staging; the manifest names dongne_stg/);
    expect(err.hint).toMatch(/set database\.name of staging to dongne_staging/);
    expect(doc.projects.dongne!.environments.staging).toEqual(before.projects.dongne!.environments.staging);
    // The name it has, written out, is accepted.
    expect(put(doc, src('dongne', '  staging: { database: { name: dongne_staging } }'), 'staging').database).toBe('dongne_staging');
  });
});
