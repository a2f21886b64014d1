/** Names that reach Postgres, Redis, S3, Podman and the file system: the rules, the limits, the refusals. */
import { describe, expect, it } from 'vitest';
import { CodebError } from '../../controller/errors.js';
import {
  BACKUP_BUCKET,
  baseName,
  bucketName,
  containerName,
  deploymentName,
  entryName,
  SEP,
  databaseName,
  databaseRole,
  envFileName,
  envShort,
  networkName,
  redisKeyPrefix,
  redisUser,
  routeId,
  type NameScope,
} from '../../controller/manifest/names.js';

const single = (projectId: string, env = 'production'): NameScope => ({ projectId, env, multiEnv: false });
const multi = (projectId: string, env: string): NameScope => ({ projectId, env, multiEnv: true });

/** Postgres: identifiers up to 63 bytes (NAMEDATALEN - 1); we keep to unquoted lowercase ones. */
const PG_IDENT = /^[a-z_][a-z0-9_]*$/;
/** S3 / MinIO bucket names: 3-63 characters, lowercase letters, digits, dots and dashes, alphanumeric at both ends. */
const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

describe('baseName and envShort', () => {
  it.each([
    ['food-delivery-app', 'food-delivery'],
    ['hello', 'hello'],
    ['app', 'app'],
    ['my-app-app', 'my-app'],
    ['appstore', 'appstore'],
    ['web-application', 'web-application'],
    ['ab-app', 'ab'],
  ])('baseName(%j) = %j', (id, base) => {
    expect(baseName(id)).toBe(base);
  });

  it.each([
    ['production', 'prod'],
    ['development', 'dev'],
    ['staging', 'staging'],
    ['qa-1', 'qa-1'],
    ['prod', 'prod'],
  ])('envShort(%j) = %j', (env, short) => {
    expect(envShort(env)).toBe(short);
  });
});

describe('the naming rules', () => {
  it.each([
    // scope, database, role, bucket
    [single('food-delivery-app'), 'food_delivery_db', 'food_delivery_db_owner', 'food-delivery-uploads'],
    [single('hello'), 'hello_db', 'hello_db_owner', 'hello-uploads'],
    [single('stock-analysis', 'production'), 'stock_analysis_db', 'stock_analysis_db_owner', 'stock-analysis-uploads'],
    // A single-environment manifest whose primary environment is not production: names do not change.
    [single('food-delivery-app', 'staging'), 'food_delivery_db', 'food_delivery_db_owner', 'food-delivery-uploads'],
    [multi('food-delivery-app', 'production'), 'food_delivery_prod', 'food_delivery_prod_owner', 'food-delivery-prod-uploads'],
    [multi('food-delivery-app', 'staging'), 'food_delivery_staging', 'food_delivery_staging_owner', 'food-delivery-staging-uploads'],
    [multi('food-delivery-app', 'development'), 'food_delivery_dev', 'food_delivery_dev_owner', 'food-delivery-dev-uploads'],
    [multi('qna-community', 'qa-1'), 'qna_community_qa_1', 'qna_community_qa_1_owner', 'qna-community-qa-1-uploads'],
  ])('%j -> %s, %s, %s', (scope, db, role, bucket) => {
    expect(databaseName(scope)).toBe(db);
    expect(databaseRole(scope)).toBe(role);
    expect(bucketName(scope)).toBe(bucket);
  });

  it('bucket suffixes name further buckets; the shared backup bucket is "backup"', () => {
    expect(bucketName(single('food-delivery-app'), 'media')).toBe('food-delivery-media');
    expect(bucketName(multi('food-delivery-app', 'staging'), 'media')).toBe('food-delivery-staging-media');
    expect(BACKUP_BUCKET).toBe('backup');
  });

  it('Redis user and key prefix', () => {
    expect(redisUser(single('food-delivery-app'))).toBe('codeb-food-delivery-app--prod');
    expect(redisUser(multi('food-delivery-app', 'staging'))).toBe('codeb-food-delivery-app--staging');
    expect(redisUser(multi('food-delivery-app', 'development'))).toBe('codeb-food-delivery-app--dev');
    expect(redisKeyPrefix(single('food-delivery-app'))).toBe('food-delivery-app:');
    expect(redisKeyPrefix(multi('food-delivery-app', 'production'))).toBe('food-delivery-app:prod:');
    expect(redisKeyPrefix(multi('food-delivery-app', 'staging'))).toBe('food-delivery-app:staging:');
  });

  it('containers, networks, env files and Caddy route ids carry the full environment name', () => {
    expect(containerName('food-delivery-app', 'production', 'web', 'blue')).toBe('food-delivery-app--production--web--blue');
    expect(containerName('food-delivery-app', 'staging', 'api', 'green')).toBe('food-delivery-app--staging--api--green');
    expect(networkName('food-delivery-app', 'production')).toBe('codeb-food-delivery-app--production');
    expect(envFileName('food-delivery-app', 'staging')).toBe('food-delivery-app.staging.env');
    expect(routeId('food-delivery-app', 'production')).toBe('codeb-food-delivery-app--production');
  });

  it('different environments of one project never share a database, role, bucket or Redis user', () => {
    const envs = ['production', 'staging', 'development', 'qa', 'preview-1'];
    for (const fn of [databaseName, databaseRole, (s: NameScope) => bucketName(s), redisUser, redisKeyPrefix]) {
      const names = envs.map((e) => fn(multi('shop', e)));
      expect(new Set(names).size).toBe(envs.length);
    }
  });
});

describe('runtime names are unambiguous by construction (issue 9, finding 3)', () => {
  // id s-c with environment x-production took over project s-c-x's route, container and entry.
  const pairs: Array<[[string, string, string], [string, string, string]]> = [
    [['s-c', 'x-production', 'web'], ['s-c-x', 'production', 'web']],
    [['a', 'b-c', 'd'], ['a', 'b', 'c-d']],
    [['a-b', 'c', 'd'], ['a', 'b-c', 'd']],
  ];

  it.each(pairs)('%j and %j never share a container, entry, route, network or release name', (x, y) => {
    expect(containerName(x[0], x[1], x[2], 'blue')).not.toBe(containerName(y[0], y[1], y[2], 'blue'));
    expect(entryName(...x)).not.toBe(entryName(...y));
    if (x[0] !== y[0] || x[1] !== y[1]) {
      expect(routeId(x[0], x[1])).not.toBe(routeId(y[0], y[1]));
      expect(networkName(x[0], x[1])).not.toBe(networkName(y[0], y[1]));
      expect(deploymentName(x[0], x[1])).not.toBe(deploymentName(y[0], y[1]));
      expect(envFileName(x[0], x[1])).not.toBe(envFileName(y[0], y[1]));
      expect(redisUser({ projectId: x[0], env: x[1], multiEnv: true })).not.toBe(redisUser({ projectId: y[0], env: y[1], multiEnv: true }));
    }
  });

  it('the separator cannot occur inside a valid id, environment or service name', () => {
    expect(SEP).toBe('--');
    expect(() => containerName('s--c', 'production', 'web', 'blue')).toThrow(CodebError);
    expect(() => entryName('shop', 'x--y', 'web')).toThrow(CodebError);
    expect(() => entryName('shop', 'production', 'w--eb')).toThrow(CodebError);
    // Splitting on the separator gives back exactly the parts.
    expect(containerName('s-c', 'x-production', 'web-api', 'green').split(SEP)).toEqual(['s-c', 'x-production', 'web-api', 'green']);
  });
});

describe('limits: the longest valid inputs stay within Postgres 63 and S3 63', () => {
  const ids = ['a'.repeat(40), 'ab-'.repeat(13) + 'a', 'z'.repeat(36) + '-app', 'ab'];
  const envs = ['production', 'development', 'staging', 'abcdefghijkl', 'a-b-c-d-e-f1', 'qa'];
  const suffixes = ['uploads', 'abcdefgh', 'a1-b2-c3', 'x'];

  it('every input is a schema-valid maximum or minimum', () => {
    for (const id of ids) expect(id.length).toBeLessThanOrEqual(40);
    expect(ids[0]).toHaveLength(40);
    expect(ids[1]).toHaveLength(40);
    expect(ids[2]).toHaveLength(40);
    expect(envs[3]).toHaveLength(12);
    expect(envs[4]).toHaveLength(12);
    expect(suffixes[1]).toHaveLength(8);
  });

  it.each(ids)('project id %s', (id) => {
    for (const env of envs) {
      for (const multiEnv of [false, true]) {
        const scope = { projectId: id, env, multiEnv };
        for (const name of [databaseName(scope), databaseRole(scope)]) {
          expect(name).toMatch(PG_IDENT);
          expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
        }
        for (const suffix of suffixes) {
          const b = bucketName(scope, suffix);
          expect(b).toMatch(S3_BUCKET);
          expect(b).not.toContain('..');
          expect(b.length).toBeLessThanOrEqual(63);
        }
        expect(redisUser(scope).length).toBeLessThanOrEqual(63);
        expect(containerName(id, env, 'a'.repeat(30), 'green')).toMatch(/^[a-z0-9][a-z0-9-]*$/);
        expect(envFileName(id, env)).not.toContain('/');
      }
    }
  });

  it('the longest database and bucket names are what we expect', () => {
    expect(databaseRole(multi('a'.repeat(40), 'abcdefghijkl'))).toBe(`${'a'.repeat(40)}_abcdefghijkl_owner`);
    expect(databaseRole(multi('a'.repeat(40), 'abcdefghijkl'))).toHaveLength(59);
    expect(bucketName(multi('a'.repeat(40), 'abcdefghijkl'), 'abcdefgh')).toHaveLength(62);
  });
});

describe('hostile inputs throw instead of being escaped or truncated', () => {
  const hostileIds = [
    "a'; DROP DATABASE x; --",
    '$(reboot)',
    'demo;reboot',
    'demo`id`',
    'demo|sh',
    '../etc',
    'a/b',
    'FoodDelivery',
    'fооd', // Cyrillic о
    'ｄｅｍｏ', // fullwidth
    'a'.repeat(41),
    '',
    '-demo',
    'demo-',
    'demo--app',
    '1demo',
    'demo_app',
    'demo.app',
    'demo app',
    'demo\napp',
  ];
  const hostileEnvs = ['Prod', 'prod;x', '../prod', 'abcdefghijklm', 'prod_1', '', 'stagіng' /* Ukrainian і */];

  function throwsInvalid(fn: () => unknown): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).exitCode).toBe(2);
  }

  it.each(hostileIds)('project id %j', (id) => {
    throwsInvalid(() => baseName(id));
    throwsInvalid(() => databaseName(single(id)));
    throwsInvalid(() => databaseRole(multi(id, 'staging')));
    throwsInvalid(() => bucketName(single(id)));
    throwsInvalid(() => redisUser(single(id)));
    throwsInvalid(() => redisKeyPrefix(single(id)));
    throwsInvalid(() => containerName(id, 'production', 'web', 'blue'));
    throwsInvalid(() => networkName(id, 'production'));
    throwsInvalid(() => envFileName(id, 'production'));
    throwsInvalid(() => routeId(id, 'production'));
  });

  it.each(hostileEnvs)('environment %j', (env) => {
    throwsInvalid(() => envShort(env));
    throwsInvalid(() => databaseName(multi('shop', env)));
    throwsInvalid(() => bucketName(multi('shop', env)));
    throwsInvalid(() => redisUser(multi('shop', env)));
    throwsInvalid(() => containerName('shop', env, 'web', 'blue'));
    throwsInvalid(() => envFileName('shop', env));
  });

  it.each(['Web', 'web$(id)', '../web', 'a'.repeat(31), 'web_1'])('service %j', (service) => {
    throwsInvalid(() => containerName('shop', 'production', service, 'blue'));
  });

  it.each(['../x', 'UP', 'a.b', 'a_b', '-x', 'x-', ''])('bucket suffix %j', (suffix) => {
    throwsInvalid(() => bucketName(single('shop'), suffix));
  });
});
