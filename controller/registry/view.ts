/** What `registry list` and `registry inspect` show. Pure: document in, rows and text out. */
import { describeInterruption, interruptedDeploy } from '../deploy/resume.js';
import type { DeployProgress, EnvironmentRecord, ProjectRecord, RegistryDocument, ServiceRouteRecord } from './types.js';
import { allocatedReplicas, formatSlotPorts, slotPorts } from './slot-ports.js';

export interface ListRow {
  project: string;
  env: string;
  status: string;
  domain: string | null;
  ports: string;
  redisDb: number | null;
  database: string | null;
  bucket: string | null;
  health: string;
  /** When a deploy or `codeb monitor` last checked it. */
  healthCheckedAt: string | null;
  liveSlot: string | null;
}

export function listRows(doc: RegistryDocument): ListRow[] {
  const rows: ListRow[] = [];
  for (const p of Object.values(doc.projects).sort((a, b) => a.id.localeCompare(b.id))) {
    for (const e of Object.values(p.environments).sort((a, b) => a.env.localeCompare(b.env))) {
      rows.push({
        project: p.id,
        env: e.env,
        status: e.status,
        domain: e.domain,
        ports: Object.entries(e.ports).map(([s, pp]) => `${s}:${pp.entry}>${slotPorts(pp, 'blue').join('+')}/${slotPorts(pp, 'green').join('+')}`).join(' '),
        redisDb: e.redisDb,
        database: e.database,
        bucket: e.bucket,
        health: e.health.status,
        healthCheckedAt: e.health.lastCheck,
        liveSlot: e.liveSlot,
      });
    }
  }
  return rows;
}

/** Kept data of destroyed deployments (tombstones), as list rows: status `destroyed, data kept`. */
export function tombstoneRows(doc: RegistryDocument): ListRow[] {
  return [...(doc.tombstones ?? [])]
    .sort((a, b) => a.project.localeCompare(b.project) || a.env.localeCompare(b.env))
    .map((t) => ({
      project: t.project,
      env: t.env,
      status: 'destroyed, data kept',
      domain: null,
      ports: '',
      redisDb: null,
      database: t.database,
      bucket: [...t.buckets, ...(t.volumes ?? []).map((v) => `volume ${v}`)].join(',') || null,
      health: '-',
      healthCheckedAt: null,
      liveSlot: null,
    }));
}

export function renderTable(rows: ListRow[]): string {
  const head = ['PROJECT', 'ENV', 'STATUS', 'DOMAIN', 'PORTS (entry>blue/green)', 'REDIS', 'DATABASE', 'BUCKET', 'HEALTH', 'CHECKED'];
  const cells = rows.map((r) => [r.project, r.env, r.status, r.domain ?? '-', r.ports || '-', r.redisDb === null ? '-' : String(r.redisDb), r.database ?? '-', r.bucket ?? '-', r.health, r.healthCheckedAt ?? '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...cells.map(line)].join('\n');
}

/** Keys that would hold secrets are never shown, even if something put them in the registry. */
const SECRET_KEY = /pass(word)?|secret|token|private|credential|api[-_]?key|access[-_]?key/i;

export function redact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redact(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v);
    return out as T;
  }
  return value;
}

export interface InspectView {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  environments: Record<string, EnvironmentRecord>;
}

export function inspectView(p: ProjectRecord, env?: string): InspectView {
  const envs = env ? { [env]: p.environments[env]! } : p.environments;
  return redact({ id: p.id, name: p.name, createdAt: p.createdAt, updatedAt: p.updatedAt, environments: envs });
}

export function renderInspect(v: InspectView): string {
  const out: string[] = [`project  ${v.id} (${v.name})`, `created  ${v.createdAt}`, `updated  ${v.updatedAt}`];
  for (const e of Object.values(v.environments)) {
    out.push('', `environment ${e.env}: ${e.status}`);
    out.push(`  domain      ${e.domain ?? '-'}${e.aliases?.length ? ` (aliases: ${e.aliases.join(', ')})` : ''}`);
    for (const [svc, r] of Object.entries(e.serviceRoutes ?? {})) out.push(`  route       ${serviceRouteLine(svc, r)}`);
    const ports = Object.entries(e.ports);
    out.push(`  ports       ${ports.length ? ports.map(([s, p]) => `${s} entry ${p.entry} (blue ${formatSlotPorts(p, 'blue')}, green ${formatSlotPorts(p, 'green')}${p.replicas ? `; ${allocatedReplicas(p)} replicas` : ''})`).join('; ') : '-'}`);
    out.push(`  live slot   ${e.liveSlot ?? '-'}${e.retained ? ` (previous version retained in ${e.retained.slot} until ${e.retained.until})` : ''}`);
    out.push(`  redis db    ${e.redisDb ?? '-'}${e.redisUser ? ` (user ${e.redisUser})` : ''}`);
    out.push(`  database    ${e.database ?? '-'}${e.databaseRole ? ` (role ${e.databaseRole})` : ''}`);
    out.push(`  buckets     ${e.buckets?.length ? e.buckets.join(', ') : '-'}`);
    out.push(`  volumes     ${e.volumes?.length ? e.volumes.join(', ') : '-'}`);
    if (e.deploy) out.push(`  last deploy ${deployLine(e.deploy)}`);
    out.push(`  health      ${e.health.status}${e.health.lastCheck ? ` (last check ${e.health.lastCheck})` : ''}${e.health.detail ? `: ${e.health.detail}` : ''}`);
    out.push(`  containers  ${e.containers.length ? '' : '-'}`);
    for (const c of e.containers) out.push(`    ${c.name}  ${c.image}  ${c.state}${c.hostPort ? `  :${c.hostPort}` : ''}${c.id ? `  ${c.id.slice(0, 12)}` : ''}`);
    out.push(`  history     ${e.history.length ? '' : '-'}`);
    for (const h of e.history.slice(-10)) {
      const d = (h.detail ?? {}) as Record<string, unknown>;
      const resumed = d.resumed as { phase?: string } | undefined;
      out.push(`    ${h.at}  ${h.action}  ${h.result}  by ${h.by}${d.version ? `  ${String(d.version)}` : ''}${typeof d.switchMs === 'number' ? `  switch ${d.switchMs} ms` : ''}${resumed?.phase ? `  (resumed: cut short at "${resumed.phase}")` : ''}`);
    }
  }
  return out.join('\n');
}

/** The last deploy's phase, in words; a deploy cut short says so and what the next apply does. */
export function deployLine(p: DeployProgress): string {
  if (interruptedDeploy({ deploy: p })) {
    return `INTERRUPTED: ${describeInterruption(p)} (recorded ${p.at}); the next apply or deploy finishes it (\`codeb plan\` shows how), \`codeb rollback\` ends it`;
  }
  return `${p.version} to ${p.slot}: ${p.phase} (${p.at})`;
}

/** A service's route in words: where it is served and who may use it (the user name, never a secret). */
export function serviceRouteLine(service: string, r: ServiceRouteRecord): string {
  const at = r.domains.length ? `${r.domains.join(', ')} (tls ${r.tls})` : 'the main domain';
  const guard = [r.basicAuthUser ? `basic auth (user ${r.basicAuthUser})` : null, r.allow.length ? `allow ${r.allow.join(', ')}` : null].filter(Boolean);
  return `${service} at ${at}${r.path ? `, path ${r.path}` : ''}${guard.length ? `; ${guard.join('; ')}` : '; open'}`;
}
