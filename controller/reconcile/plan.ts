/**
 * plan(desired, observed): the actions that make the world match, in dependency order, each with
 * its reason and the fields that differ. Pure and table-tested. A second apply of an unchanged
 * manifest plans nothing but `unchanged`.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Action, FieldChange, Observed, Resource } from './model.js';

/** Spec fields that only carry instructions (secret names, sharing, adopting an earlier codeb's data) and are never observed. */
const UNOBSERVED_FIELDS = new Set(['secret', 'shared', 'adoptLegacy']);

export function diffSpec(want: Record<string, unknown>, have: Record<string, unknown> | undefined): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const [field, to] of Object.entries(want)) {
    if (UNOBSERVED_FIELDS.has(field)) continue;
    const from = have?.[field];
    if (!isDeepStrictEqual(from, to)) changes.push({ field, from, to });
  }
  return changes;
}

export function planApply(desired: Resource[], observed: Observed[]): Action[] {
  const seen = new Map(observed.map((o) => [o.key, o]));
  return desired.map((r): Action => {
    const o = seen.get(r.key);
    const base = { key: r.key, kind: r.kind, name: r.name, resource: r };
    if (!o || !o.exists) return { ...base, op: 'create', reason: 'does not exist', changes: [] };
    if (o.conflict) return { ...base, op: 'blocked', reason: o.conflict, changes: [] };
    const changes = diffSpec(r.spec, o.spec);
    if (changes.length === 0) return { ...base, op: 'unchanged', reason: 'matches the manifest', changes };
    return { ...base, op: 'update', reason: `differs in ${changes.map((c) => c.field).join(', ')}`, changes };
  });
}

/** Destroy: delete what exists in reverse dependency order; keep data unless asked to delete it. */
export function planDestroy(owned: Resource[], observed: Observed[], deleteData: boolean): Action[] {
  const seen = new Map(observed.map((o) => [o.key, o]));
  return [...owned].reverse().map((r): Action => {
    const o = seen.get(r.key);
    const base = { key: r.key, kind: r.kind, name: r.name, resource: r, changes: [] };
    if (!o || !o.exists) return { ...base, op: 'unchanged', reason: 'already gone' };
    if (o.conflict) return { ...base, op: 'blocked', reason: o.conflict };
    if (r.holdsData && !deleteData) return { ...base, op: 'keep', reason: 'holds data (pass --delete-data to delete it)' };
    return { ...base, op: 'delete', reason: 'project destroyed' };
  });
}

export interface PlanSummary {
  create: number;
  update: number;
  delete: number;
  unchanged: number;
  keep: number;
  blocked: number;
}

export function summarize(actions: Action[]): PlanSummary {
  const s: PlanSummary = { create: 0, update: 0, delete: 0, unchanged: 0, keep: 0, blocked: 0 };
  for (const a of actions) s[a.op]++;
  return s;
}

export function hasChanges(actions: Action[]): boolean {
  return actions.some((a) => a.op === 'create' || a.op === 'update' || a.op === 'delete');
}
