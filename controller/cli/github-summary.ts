/**
 * The deploy summary codeb appends to $GITHUB_STEP_SUMMARY (GitHub Actions) after `apply` and
 * `deploy`, whether they succeed or fail: result, URL, version, health timings, switch time and,
 * on failure, the reason. renderStepSummary is pure; everything in it passes through redaction.
 */
import { appendFileSync } from 'node:fs';
import { redactText } from '../redact.js';
import type { HistoryEntry } from '../registry/types.js';

export interface StepSummaryInput {
  command: string;
  manifest?: string;
  project?: string;
  env?: string;
  /** "this machine" or "deploy@host (over SSH)". */
  where: string;
  exitCode: number;
  /** The error the command ended with (full text; the first line is the headline). */
  error?: string;
  /** Registry history entries this run wrote. */
  history: HistoryEntry[];
  url?: string | null;
  durationMs: number;
}

const RESULT: Record<number, string> = {
  0: '✅ deployed',
  1: '❌ failed',
  2: '❌ invalid input (nothing was changed)',
  3: '❌ health gate failed — traffic untouched, the previous version keeps serving',
  4: '↩️ rolled back after the switch — the previous version serves again',
};

function fmtMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Table cells: no pipes or newlines; inline code for values. */
function cell(s: string): string {
  return s.replaceAll('|', '\\|').replace(/\s*\n\s*/g, ' ');
}

function code(s: string): string {
  const ticks = Math.max(0, ...[...s.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(ticks + 1);
  return `${fence}${ticks ? ' ' : ''}${s}${ticks ? ' ' : ''}${fence}`;
}

function fence(s: string): string {
  const ticks = Math.max(2, ...[...s.matchAll(/`+/g)].map((m) => m[0].length));
  const f = '`'.repeat(ticks + 1);
  return `${f}text\n${s.trimEnd()}\n${f}`;
}

export function renderStepSummary(i: StepSummaryInput): string {
  const deploy = [...i.history].reverse().find((h) => h.action === 'deploy');
  const d = (deploy?.detail ?? {}) as Record<string, unknown>;
  const applyFailed = [...i.history].reverse().find((h) => h.action === 'apply' && h.result === 'failed');
  let result = RESULT[i.exitCode] ?? `❌ failed (exit code ${i.exitCode})`;
  if (i.exitCode === 0 && !deploy) result = i.history.length ? '✅ applied (containers unchanged)' : '✅ no changes — already up to date';
  const title = `### codeb ${i.command}: ${i.project ?? i.manifest ?? 'manifest'}${i.env ? ` (${i.env})` : ''}`;
  const rows: Array<[string, string]> = [['Result', `${result} (exit code ${i.exitCode})`]];
  if (i.url) rows.push(['URL', i.url]);
  if (d.version !== undefined) rows.push(['Version', code(String(d.version))]);
  if (d.images && typeof d.images === 'object') {
    const images = Object.entries(d.images as Record<string, string>).map(([s, img]) => `${s}: ${code(img)}`);
    if (images.length) rows.push(['Images', images.join(', ')]);
  }
  if (d.to !== undefined) rows.push(['Traffic', `${String(d.from ?? 'none')} → ${String(d.to)}`]);
  if (Array.isArray(d.health) && d.health.length) {
    const health = (d.health as Array<{ service: string; healthy: boolean; ms: number; firstOkMs: number | null }>).map(
      (h) => `${h.service}: ${h.healthy ? 'healthy' : 'unhealthy'} after ${fmtMs(h.ms)}${h.firstOkMs !== null && h.firstOkMs !== undefined ? ` (first ok at ${fmtMs(h.firstOkMs)})` : ''}`,
    );
    rows.push(['Health gate', health.join('; ')]);
  }
  if (typeof d.switchMs === 'number') rows.push(['Switch', `${d.switchMs} ms`]);
  const resumed = d.resumed as { phase?: string; startedAt?: string; by?: string } | undefined;
  if (resumed?.phase) rows.push(['Resumed', `a deploy cut short at "${resumed.phase}" (started ${resumed.startedAt ?? '?'} by ${resumed.by ?? '?'}) was finished by this run`]);
  rows.push(['Duration', fmtMs(i.durationMs)]);
  rows.push(['Ran on', i.where]);
  if (i.manifest) rows.push(['Manifest', code(i.manifest)]);

  const reason = i.exitCode === 0 ? undefined : (d.reason as string | undefined) ?? (applyFailed?.detail?.error as string | undefined) ?? i.error?.split('\n')[0];
  if (reason) rows.push(['Reason', reason]);

  const lines = [title, '', '| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${cell(v)} |`), ''];
  if (i.exitCode !== 0 && i.error?.includes('\n')) lines.push('<details><summary>Error</summary>', '', fence(i.error), '', '</details>', '');
  return redactText(lines.join('\n'));
}

/** Append to $GITHUB_STEP_SUMMARY (a no-op without it). */
export function appendStepSummary(markdown: string, file = process.env.GITHUB_STEP_SUMMARY): void {
  if (!file) return;
  appendFileSync(file, markdown.endsWith('\n') ? `${markdown}\n` : `${markdown}\n\n`);
}
