/** Text for plan, apply and destroy results. Pure; the CLI prints it (through redaction). */
import { statefulServices } from '../deploy/stateful.js';
import type { ApplyResult, StepResult } from './apply.js';
import type { DestroyResult } from './destroy.js';
import type { PlanSummary } from './plan.js';
import { formatMs } from './reporter.js';
import { formatSlotPorts } from '../registry/slot-ports.js';

const MARK: Record<string, string> = { create: '+', update: '~', delete: '-', unchanged: '=', keep: 'k', blocked: '!' };

function show(v: unknown): string {
  return JSON.stringify(v) ?? 'none';
}

export function renderSteps(steps: StepResult[], all = true): string[] {
  const rows = steps.filter((s) => all || (s.op !== 'unchanged'));
  const kindW = Math.max(0, ...rows.map((s) => s.kind.length));
  const nameW = Math.max(0, ...rows.map((s) => s.name.length));
  const out: string[] = [];
  for (const s of rows) {
    out.push(`  ${MARK[s.op] ?? '?'} ${s.op.padEnd(9)} ${s.kind.padEnd(kindW)}  ${s.name.padEnd(nameW)}  ${s.reason}`);
    for (const c of s.changes) out.push(`      ${c.field}: ${show(c.from)} -> ${show(c.to)}`);
  }
  return out;
}

export function summaryLine(s: PlanSummary): string {
  const extra = [s.keep ? `${s.keep} kept` : '', s.blocked ? `${s.blocked} blocked` : ''].filter(Boolean);
  return `${s.create} to create, ${s.update} to update, ${s.delete} to delete, ${s.unchanged} unchanged${extra.length ? `, ${extra.join(', ')}` : ''}.`;
}

export function renderPlan(r: ApplyResult): string {
  const out = [`Plan for ${r.project} (${r.env}):`];
  if (r.interrupted) out.push(`  > resume    interrupted deploy of ${r.interrupted.version}  ${r.interrupted.text}`);
  out.push(...renderSteps(r.planned), ...r.notes.filter((n) => n !== r.interrupted?.text).map((n) => `  note: ${n}`));
  out.push(r.changed ? summaryLine(r.summary) : 'No changes. The servers match the manifest.');
  return out.join('\n');
}

export function renderApplySummary(r: ApplyResult): string {
  if (!r.applied) return `No changes. ${r.project} (${r.env}) matches the manifest (checked in ${formatMs(r.durationMs)}).`;
  const rec = r.record;
  // A stateful service has one container, on its blue port, whatever slot is live.
  const stateful = statefulServices(rec);
  const ports = Object.entries(rec.ports)
    .map(([s, p]) => (stateful.has(s) ? `${s} entry ${p.entry} (stateful: one container on ${p.blue})` : `${s} entry ${p.entry} (blue ${formatSlotPorts(p, 'blue')}, green ${formatSlotPorts(p, 'green')}; live ${rec.liveSlot ?? 'none'})`))
    .join('; ');
  const lines = [
    `Applied ${r.project} (${r.env}) in ${formatMs(r.durationMs)}: ${r.summary.create} created, ${r.summary.update} updated, ${r.summary.unchanged} unchanged.`,
    `  url       ${r.url ?? '-'}`,
    `  ports     ${ports || '-'}`,
    `  database  ${rec.database ?? '-'}${rec.databaseRole ? ` (role ${rec.databaseRole})` : ''}`,
    `  redis     ${rec.redisDb === null ? '-' : `db ${rec.redisDb} (user ${rec.redisUser})`}`,
    `  buckets   ${rec.buckets.length ? rec.buckets.join(', ') : '-'}`,
    `  env file  ${r.envFile} (mode 0600)`,
    ...r.notes.map((n) => `  note: ${n}`),
  ];
  return lines.join('\n');
}

export function renderDestroy(r: DestroyResult): string {
  if (r.cancelled) return 'Cancelled. Nothing was changed.';
  const lines = [`Destroyed ${r.project} (${r.env}); its ports and Redis slot are released.`];
  if (r.deleted.length) lines.push(`  deleted: ${r.deleted.join(', ')}`);
  if (r.kept.length) lines.push(`  kept (holds data): ${r.kept.join(', ')}`, '  Run again with --delete-data to delete them too.');
  return lines.join('\n');
}
