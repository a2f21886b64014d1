/** What plan and apply say about a planned deploy: dependsOn's start order and recreate (issue 12, items 5 and 7). */
import { describe, expect, it } from 'vitest';
import { deployNotes } from '../../controller/deploy/bluegreen.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import type { Manifest } from '../../controller/manifest/types.js';

const WEB = { image: 'localhost/demo:v1', port: 8080 };
const m = (services: Manifest['services'], strategy?: 'blue-green' | 'recreate'): Manifest => ({ apiVersion: 'codeb/v1', project: { id: 'demo' }, services, ...(strategy ? { deploy: { strategy } } : {}) });

describe('deployNotes', () => {
  it.each<[string, Manifest, 'blue' | null, string[]]>([
    ['no dependsOn, blue-green: nothing to say', m({ web: WEB, api: { ...WEB, type: 'internal' } }), 'blue', []],
    [
      'waves in order, independent services together',
      m({ web: { ...WEB, dependsOn: ['api'] }, api: { ...WEB, type: 'internal', dependsOn: ['db'] }, db: { ...WEB, type: 'internal' }, worker: { image: 'localhost/demo:v1', type: 'worker' } }),
      null,
      ['dependsOn: services start in 3 waves, each once the one before passed its health gate: db + worker -> api -> web'],
    ],
    ['a dependency with replicas 0 starts nothing and orders nothing', m({ web: { ...WEB, dependsOn: ['api'] }, api: { ...WEB, type: 'internal', replicas: 0 } }), null, []],
    ['recreate with a running version', m({ web: WEB }, 'recreate'), 'blue', ['strategy recreate: the running version (blue slot) stops before the new one starts; nothing serves until the new one is healthy']],
    ['recreate of a first deploy: nothing runs to stop', m({ web: WEB }, 'recreate'), null, []],
  ])('%s', (_name, manifest, live, notes) => {
    expect(deployNotes(resolveDeployment(manifest), live)).toEqual(notes);
  });
});
