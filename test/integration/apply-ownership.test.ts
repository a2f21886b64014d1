/**
 * Every derived name has one owner (issue 9, finding 3): a container that carries this deployment's
 * name but another owner's labels is never replaced: `plan` and `apply` show the release as
 * blocked, name the owner, and change nothing. Reproduces the finding's shape: id s-c with
 * environment x-production against project s-c-x.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerName } from '../../controller/manifest/names.js';
import { LABEL } from '../../controller/runtime/types.js';
import type { Settings } from '../../controller/settings.js';
import { Sandbox, describeRun, podman, projectContainers } from './helpers/apply.js';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';

const box = new Sandbox('ownership', { CODEB_PORT_RANGE: appPorts('5180-5209') });
let settings: Settings;
const id = uniqueId('own');
const victim = `${id}-x`;
const env = 'x-production';
const name = containerName(id, env, 'web', 'blue');

function manifest(): string {
  return `apiVersion: codeb/v1
project:
  id: ${id}
environment:
  domain: ${id}-prod.localhost
environments:
  ${env}:
    domain: ${id}-x.localhost
services:
  web:
    image: localhost/codeb-testapp:v1
    port: 8080
`;
}

beforeAll(async () => {
  settings = stackSettings();
  // A container named like this deployment's blue web container, labelled as another project's.
  await podman(settings).createContainer({
    name,
    Image: 'localhost/codeb-testapp:v1',
    Labels: { [LABEL.managed]: 'true', [LABEL.project]: victim, [LABEL.env]: 'production', [LABEL.service]: 'web', [LABEL.slot]: 'blue' },
  });
});

afterAll(async () => {
  await podman(settings).getContainer(name).remove({ force: true }).catch(() => {});
});

describe('derived names are owned', () => {
  it('names of different (project, environment) pairs never collide: s-c + x-production vs s-c-x + production', () => {
    expect(containerName(id, env, 'web', 'blue')).not.toBe(containerName(victim, 'production', 'web', 'blue'));
  });

  it("a container with this deployment's name but another owner's labels blocks plan and apply, naming the owner", async () => {
    const file = box.write('own.yaml', manifest());
    const plan = await box.run(['plan', file, '--env', env]);
    expect(plan.code, describeRun(plan)).toBe(1);
    expect(plan.stderr).toContain(`runtime.release ${id}--${env}`);
    expect(plan.stderr).toContain(`container ${name} exists and belongs to project "${victim}" (production)`);
    const apply = await box.run(['apply', file, '--env', env]);
    expect(apply.code, describeRun(apply)).toBe(1);
    expect(apply.stderr).toContain('Nothing was changed');
    // The foreign container is untouched and nothing of this deployment was made.
    expect((await projectContainers(settings, victim)).map((c) => c.name)).toEqual([name]);
    expect(await projectContainers(settings, id)).toEqual([]);
    expect(existsSync(box.registry)).toBe(false);
  }, 120_000);
});
