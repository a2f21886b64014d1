import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { allocate, AllocationError } from '../../controller/registry/allocate.js';
import { allocationRequest, recordAllocation } from '../../controller/registry/records.js';
import { emptyRegistry, type RegistryDocument } from '../../controller/registry/types.js';

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
