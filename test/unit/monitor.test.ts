import { describe, expect, it } from 'vitest';
import { healthTransition, liveVersion, renderMonitor, type MonitorRow } from '../../controller/ops/monitor.js';
import type { EnvironmentRecord, HistoryEntry } from '../../controller/registry/types.js';

describe('healthTransition: only a change is alerted', () => {
  it.each([
    ['unknown', true, 'healthy', null],
    ['healthy', true, 'healthy', null],
    ['unhealthy', true, 'healthy', 'service.recovered'],
    ['unknown', false, 'unhealthy', 'service.unhealthy'],
    ['healthy', false, 'unhealthy', 'service.unhealthy'],
    ['unhealthy', false, 'unhealthy', null],
  ] as const)('%s + check ok=%s -> %s, alert %s', (previous, ok, status, alert) => {
    expect(healthTransition(previous, ok)).toEqual({ status, alert });
  });
});

describe('liveVersion', () => {
  const h = (action: string, result: HistoryEntry['result'], version?: string): HistoryEntry => ({ at: '', by: '', action, result, ...(version ? { detail: { version } } : {}) });
  it.each([
    [[], null],
    [[h('apply', 'ok')], null],
    [[h('deploy', 'ok', 'v1'), h('deploy', 'failed', 'v2')], 'v1'],
    [[h('deploy', 'ok', 'v1'), h('deploy', 'rolled-back', 'v2'), h('deploy', 'ok', 'v3')], 'v3'],
  ])('%j -> %s', (history, want) => {
    expect(liveVersion({ history } as unknown as EnvironmentRecord)).toBe(want);
  });
});

describe('renderMonitor', () => {
  const row = (o: Partial<MonitorRow>): MonitorRow => ({ project: 'shop', env: 'production', health: 'healthy', previous: 'healthy', detail: 'HTTP 200', checkedAt: 't', since: 's', alert: null, ...o });
  it('one line per deployment, the reason for a skip, since when unhealthy', () => {
    expect(
      renderMonitor([
        row({}),
        row({ env: 'staging', health: 'unhealthy', detail: 'HTTP 502', since: '2026-01-01T00:00:00.000Z' }),
        row({ project: 'worker', health: 'skipped', detail: 'nothing is live (status provisioned)' }),
      ]),
    ).toBe(
      [
        'PROJECT  ENV         HEALTH     DETAIL',
        'shop     production  healthy    HTTP 200',
        'shop     staging     unhealthy  HTTP 502 (since 2026-01-01T00:00:00.000Z)',
        'worker   production  skipped    nothing is live (status provisioned)',
      ].join('\n'),
    );
    expect(renderMonitor([])).toBe('No deployments in the registry.');
  });
});
