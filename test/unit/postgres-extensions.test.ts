/** Extensions: any the server has (pg_available_extensions), refused otherwise with the list (issue 12, item 6). */
import { describe, expect, it } from 'vitest';
import { extensionsRefusal } from '../../controller/providers/postgres.js';
import { namedDatabase } from '../../controller/manifest/names.js';

describe('extensionsRefusal', () => {
  const available = ['citext', 'hstore', 'pg_trgm', 'plpgsql', 'uuid-ossp'];
  it.each<[string, string[], RegExp | null]>([
    ['none asked', [], null],
    ['all available', ['pg_trgm', 'uuid-ossp'], null],
    ['one missing', ['pg_trgm', 'timescaledb'], /^m\.yaml: features\.database\.extensions: extension timescaledb is not available on this Postgres server\.$/],
    ['two missing', ['postgis', 'timescaledb'], /extensions postgis, timescaledb are not available/],
  ])('%s', (_name, wanted, refused) => {
    const err = extensionsRefusal('m.yaml: features.database.extensions', wanted, available);
    if (!refused) return expect(err).toBeNull();
    expect(err!.message).toMatch(refused);
    expect(err!.exitCode).toBe(2);
    // What the server has, sorted, without the built-in plpgsql.
    expect(err!.hint).toMatch(/^Available: citext, hstore, pg_trgm, uuid-ossp\. /);
  });
});

describe('namedDatabase (database.name, checked again after the schema)', () => {
  it('gives the name and its role', () => {
    expect(namedDatabase('dongne_prod')).toEqual({ database: 'dongne_prod', role: 'dongne_prod_owner' });
    expect(namedDatabase('a'.repeat(57)).role).toHaveLength(63);
  });
  it.each(['postgres', 'template1', 'pg_x', 'Dongne', 'dongne-prod', 'x', 'a'.repeat(58), '1db', 'db; drop'])('refuses %j', (name) => {
    expect(() => namedDatabase(name)).toThrow(/Invalid database name/);
  });
});
