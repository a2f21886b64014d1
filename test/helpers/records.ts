/**
 * Registry records for tests: a deployment that holds an allocation (ports, a Redis DB slot) and
 * nothing else. Pure, so unit and integration tests share it.
 */
import type { EnvironmentRecord } from '../../controller/registry/types.js';

export function placeholderRecord(o: {
  now: string;
  env?: string;
  domain?: string | null;
  redisDb?: number | null;
  ports?: EnvironmentRecord['ports'];
}): EnvironmentRecord {
  return {
    env: o.env ?? 'production',
    status: 'allocated',
    createdAt: o.now,
    updatedAt: o.now,
    domain: o.domain ?? null,
    aliases: [],
    ports: o.ports ?? {},
    redisDb: o.redisDb ?? null,
    redisUser: null,
    database: null,
    databaseRole: null,
    bucket: null,
    buckets: [],
    liveSlot: null,
    containers: [],
    health: { status: 'unknown', lastCheck: null },
    history: [],
  };
}
