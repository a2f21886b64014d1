/**
 * Golden tests for the systemd units (controller/runtime/units.ts): every service of two example
 * manifests, rendered from a fixed allocation, must match the reviewed files in
 * test/fixtures/units/ byte for byte. After an intended change, regenerate with
 *   CODEB_UPDATE_GOLDEN=1 npx vitest run test/unit/units.test.ts
 * and review the diff before committing it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import type { Deployment } from '../../controller/manifest/types.js';
import { specsFor } from '../../controller/deploy/bluegreen.js';
import type { EnvironmentRecord } from '../../controller/registry/types.js';
import { allocate, DEFAULT_POLICY } from '../../controller/registry/allocate.js';
import { allocationRequest } from '../../controller/registry/records.js';
import { emptyRegistry } from '../../controller/registry/types.js';
import type { ContainerSpec } from '../../controller/runtime/types.js';
import {
  chooseUnitKind,
  fillTemplate,
  parseExecLine,
  podmanOptionGroups,
  podmanRunArgv,
  QUADLET_CONTAINER_KEYS,
  renderQuadlet,
  renderSystemdUnit,
  systemdQuote,
} from '../../controller/runtime/units.js';

const FIXTURES = 'test/fixtures/units';
const UPDATE = process.env.CODEB_UPDATE_GOLDEN === '1';
const ENV_FILE_DIR = '/opt/codeb/registry/secrets';
const VERSION = '2026.01.15-abc1234';
const SERVICES_ADDRESS = '10.99.0.1';

function deploymentOf(file: string): Deployment {
  const loaded = parseManifest(readFileSync(file, 'utf8'), file);
  const { manifest, issues } = validateLoaded(loaded);
  expect(issues).toEqual([]);
  return resolveDeployment(manifest!);
}

/**
 * Specs for every service and slot, from a fixed allocation against an empty registry, made by
 * the same function a deploy uses (specsFor: environment, entry URLs of the project's services).
 */
function specsOf(file: string): ContainerSpec[] {
  const d = deploymentOf(file);
  const { ports } = allocate(emptyRegistry('2026-01-01T00:00:00.000Z'), allocationRequest(d), DEFAULT_POLICY);
  const rec = { ports } as unknown as EnvironmentRecord;
  const envFile = `${ENV_FILE_DIR}/${d.projectId}.${d.env}.env`;
  const blue = specsFor(d, rec, 'blue', envFile, VERSION, SERVICES_ADDRESS);
  const green = specsFor(d, rec, 'green', envFile, VERSION, SERVICES_ADDRESS);
  return blue.flatMap((b, i) => [b, green[i]!]);
}

const MANIFESTS = ['manifests/food-delivery-app.yaml', 'manifests/stock-analysis.yaml'];
const ALL = MANIFESTS.flatMap(specsOf);

function golden(fileName: string, content: string): void {
  const path = join(FIXTURES, fileName);
  if (UPDATE) {
    mkdirSync(FIXTURES, { recursive: true });
    writeFileSync(path, content);
    return;
  }
  expect(existsSync(path), `missing golden file ${path} (CODEB_UPDATE_GOLDEN=1 writes it)`).toBe(true);
  expect(content).toBe(readFileSync(path, 'utf8'));
}

describe('golden units', () => {
  it('covers every service of both manifests (blue slot; green differs only in slot, port and name)', () => {
    expect(ALL.filter((s) => s.slot === 'blue').map((s) => s.name)).toEqual([
      'food-delivery-app--production--web--blue',
      'stock-analysis--production--frontend--blue',
      'stock-analysis--production--gateway--blue',
      'stock-analysis--production--price-scanner--blue',
      'stock-analysis--production--volume-scanner--blue',
      'stock-analysis--production--signal-engine--blue',
      'stock-analysis--production--risk-engine--blue',
      'stock-analysis--production--chatbot--blue',
      'stock-analysis--production--celery-worker--blue',
      'stock-analysis--production--celery-beat--blue',
    ]);
  });

  for (const spec of ALL.filter((s) => s.slot === 'blue')) {
    it(`${spec.name}: Quadlet .container`, () => golden(`${spec.name}.container`, renderQuadlet(spec).content));
    it(`${spec.name}: plain systemd .service`, () => golden(`${spec.name}.service`, renderSystemdUnit(spec).content));
  }

  it('the green slot of food-delivery web', () => {
    const green = ALL.find((s) => s.name === 'food-delivery-app--production--web--green')!;
    golden(`${green.name}.container`, renderQuadlet(green).content);
  });

  // No example manifest turns readOnlyRootfs on; food-delivery web with it on, both unit kinds.
  const readOnly = ALL.find((s) => s.name === 'food-delivery-app--production--web--blue')!;
  const readOnlySpec: ContainerSpec = { ...readOnly, name: 'read-only--production--web--blue', security: { ...readOnly.security, readOnlyRootfs: true } };
  it('a service with readOnlyRootfs: read-only root, a tmpfs at /tmp', () => {
    const quadlet = renderQuadlet(readOnlySpec).content;
    expect(quadlet).toContain('--read-only --tmpfs=/tmp');
    expect(podmanRunArgv(readOnlySpec)).toEqual(expect.arrayContaining(['--read-only', '--tmpfs=/tmp']));
    expect(podmanRunArgv(readOnly)).not.toContain('--read-only');
    golden(`${readOnlySpec.name}.container`, quadlet);
    golden(`${readOnlySpec.name}.service`, renderSystemdUnit(readOnlySpec).content);
  });

  it('the fixture folder holds nothing but these files', () => {
    if (UPDATE) return;
    const expected = [
      ...ALL.filter((s) => s.slot === 'blue').flatMap((s) => [`${s.name}.container`, `${s.name}.service`]),
      'food-delivery-app--production--web--green.container',
      'read-only--production--web--blue.container',
      'read-only--production--web--blue.service',
    ].sort();
    expect(readdirSync(FIXTURES).sort()).toEqual(expected);
  });
});

/** Keys written into the [Container] section of a rendered Quadlet unit. */
function containerKeys(content: string): string[] {
  const keys = new Set<string>();
  let section = '';
  for (const line of content.split('\n')) {
    const s = /^\[(.+)\]$/.exec(line);
    if (s) section = s[1]!;
    else if (section === 'Container' && /^[A-Za-z]+=/.test(line)) keys.add(line.slice(0, line.indexOf('=')));
  }
  return [...keys];
}

describe('Quadlet keys', () => {
  // Keys of the [Container] section in Quadlet's first release, Podman 4.4.0: docs
  // podman-systemd.unit(5) for v4.4 (docs.podman.io/en/v4.4/markdown/podman-systemd.unit.5.html)
  // and supportedContainerKeys in pkg/systemd/quadlet/quadlet.go at tag v4.4.0.
  const QUADLET_4_4_KEYS = new Set([
    'ContainerName', 'Image', 'Environment', 'EnvironmentFile', 'EnvironmentHost', 'Exec', 'NoNewPrivileges',
    'DropCapability', 'AddCapability', 'ReadOnly', 'RemapUsers', 'RemapUid', 'RemapGid', 'RemapUidSize', 'Notify',
    'ExposeHostPort', 'PublishPort', 'User', 'Group', 'Volume', 'PodmanArgs', 'Label', 'Annotation', 'RunInit',
    'VolatileTmp', 'Timezone', 'SeccompProfile', 'AddDevice', 'Network',
  ]);

  it('every key the renderer may use exists since Quadlet 4.4', () => {
    for (const k of QUADLET_CONTAINER_KEYS) expect(QUADLET_4_4_KEYS.has(k), k).toBe(true);
  });

  it('every rendered unit uses only those keys', () => {
    for (const spec of ALL) {
      const keys = containerKeys(renderQuadlet(spec).content);
      expect(keys.length).toBeGreaterThan(3);
      for (const k of keys) expect((QUADLET_CONTAINER_KEYS as readonly string[]).includes(k), `${spec.name}: ${k}`).toBe(true);
    }
  });
});

describe('chooseUnitKind', () => {
  it.each([
    ['4.3.1', 'systemd'],
    ['podman version 4.3.1', 'systemd'],
    ['3.4.4', 'systemd'],
    ['4.4.0', 'quadlet'],
    ['4.4', 'quadlet'],
    ['v4.9.3', 'quadlet'],
    ['5.0.0-rc1', 'quadlet'],
    ['podman version 5.4.2', 'quadlet'],
    ['10.0.0', 'quadlet'],
  ])('%s -> %s', (v, kind) => expect(chooseUnitKind(v)).toBe(kind));

  it('refuses text without a version', () => expect(() => chooseUnitKind('podman')).toThrow(/Podman version/));
});

describe('systemdQuote', () => {
  const hostile = [
    'plain',
    '',
    'two words',
    'say "hi"',
    "it's",
    'back\\slash',
    'trailing\\',
    '$(rm -rf /)',
    '${HOME}',
    '$HOME',
    '$$',
    'a;b',
    ';',
    '%n',
    '100%',
    '%%',
    '`id`',
    'a && b || c > /tmp/x',
    '#not-a-comment',
    'é ü 漢字',
    '\\"\\',
    "'single quoted'",
  ];

  it.each(hostile)('round-trips %j through systemd parsing', (value) => {
    expect(parseExecLine(systemdQuote(value))).toEqual([value]);
  });

  it('round-trips all of them on one line, in order', () => {
    expect(parseExecLine(hostile.map((v) => systemdQuote(v)).join(' '))).toEqual(hostile);
  });

  it('escapes specifiers and variables, quotes anything not plain', () => {
    expect(systemdQuote('plain-word_1.2:3/x=y,z@a+b')).toBe('plain-word_1.2:3/x=y,z@a+b');
    expect(systemdQuote('%n')).toBe('"%%n"');
    expect(systemdQuote('$(x)')).toBe('"$$(x)"');
    expect(systemdQuote('a;b')).toBe('"a;b"');
    expect(systemdQuote(';')).toBe('";"');
    expect(systemdQuote('say "hi" \\o/')).toBe('"say \\"hi\\" \\\\o/"');
    expect(systemdQuote('')).toBe('""');
  });

  it.each(['line\nbreak', 'carriage\rreturn', 'tab\there', 'nul\u0000', 'del\u007f'])('refuses %j', (value) => {
    expect(() => systemdQuote(value, 'environment variable X')).toThrow(/environment variable X contains a line break or another control character/);
  });
});

describe('plain systemd unit', () => {
  const base = ALL.find((s) => s.name === 'food-delivery-app--production--web--blue')!;
  const hostileSpec: ContainerSpec = {
    ...base,
    command: ['node', 'app.js', '--greeting', 'hello "world"; $(rm -rf /) %n `id` \\', ';', ''],
    environment: { ...base.environment, A_SPACE: 'two words', B_DOLLAR: '$HOME and ${PATH}', C_PERCENT: '100% %n %%', D_QUOTES: `'single' "double"`, E_SEMI: 'a;b' },
    envFile: '/opt/codeb/registry/secrets dir/food delivery.env',
  };

  function execStartOf(content: string): string {
    const m = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(content);
    expect(m).not.toBeNull();
    return m![1]!;
  }

  it('ExecStart parses back to exactly the podman run argv', () => {
    for (const spec of [...ALL, hostileSpec, { ...hostileSpec, security: { ...hostileSpec.security, readOnlyRootfs: true } }]) {
      const unit = renderSystemdUnit(spec).content;
      expect(parseExecLine(execStartOf(unit))).toEqual(podmanRunArgv(spec));
    }
  });

  it('the argv carries the own network, the loopback-only port, no capabilities, the env file, limits, labels and the command', () => {
    const argv = podmanRunArgv(hostileSpec);
    expect(argv.slice(0, 5)).toEqual(['/usr/bin/podman', 'run', '--rm', '--name=food-delivery-app--production--web--blue', '--network=codeb-food-delivery-app--production']);
    expect(argv).toContain(`--publish=127.0.0.1:${hostileSpec.port}:${hostileSpec.port}`);
    expect(argv).toContain('--cap-drop=all');
    expect(argv).toContain('--security-opt=no-new-privileges');
    expect(argv.some((a) => a.startsWith('--cap-add'))).toBe(false);
    expect(argv).toContain('--env-file=/opt/codeb/registry/secrets dir/food delivery.env');
    expect(argv).toContain('--cpus=0.5');
    expect(argv).toContain('--memory=256m');
    expect(argv).toContain('--env=B_DOLLAR=$HOME and ${PATH}');
    expect(argv).toContain('--label=codeb.slot=blue');
    expect(argv.slice(-7)).toEqual(['localhost/codeb-testapp:v1', ...hostileSpec.command!]);
  });

  /** Quadlet cannot carry empty or lone-";" arguments (see units.ts); everything else it can. */
  const quadletHostile: ContainerSpec = { ...hostileSpec, name: 'hostile--production--web--blue', command: hostileSpec.command!.filter((a) => a !== '' && a !== ';').concat(['${HOME}', "it's", '\\;']) };

  it('Quadlet values parse back too (Quadlet splits them like Exec lines)', () => {
    const unit = renderQuadlet(quadletHostile).content;
    const values = (key: string) =>
      unit
        .split('\n')
        .filter((l) => l.startsWith(`${key}=`))
        .flatMap((l) => parseExecLine(l.slice(key.length + 1)));
    expect(values('Exec')).toEqual(quadletHostile.command);
    expect(values('EnvironmentFile')).toEqual([quadletHostile.envFile]);
    expect(values('Environment')).toEqual(Object.entries(quadletHostile.environment).map(([k, v]) => `${k}=${v}`));
    expect(values('Label')).toEqual(Object.entries(quadletHostile.labels).map(([k, v]) => `${k}=${v}`));
  });

  it.each([[''], [';']])('Quadlet refuses the command argument %j (plain units carry it)', (arg) => {
    const spec = { ...base, command: ['node', arg, 'x'] };
    expect(() => renderQuadlet(spec)).toThrow(/cannot carry/);
    expect(parseExecLine(execStartOf(renderSystemdUnit(spec).content))).toEqual(podmanRunArgv(spec));
  });

  it('the parser refuses an unquoted lone ; (systemd would split the command there)', () => {
    expect(() => parseExecLine('/bin/echo a ; b')).toThrow(/command separator/);
    expect(parseExecLine('/bin/echo a ";" b a;b')).toEqual(['/bin/echo', 'a', ';', 'b', 'a;b']);
  });

  // systemd's own parser: `systemd-analyze verify` loads each unit and fails on bad quoting.
  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
  it.skipIf(!analyze || !existsSync('/usr/bin/podman'))('systemd-analyze verify accepts every plain unit, hostile values included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'codeb-units-'));
    try {
      const files = [...ALL.filter((s) => s.slot === 'blue'), hostileSpec].map((spec, i) => {
        const file = join(dir, `u${i}-${renderSystemdUnit(spec).fileName}`);
        writeFileSync(file, renderSystemdUnit(spec).content);
        return file;
      });
      const r = spawnSync(analyze!, ['verify', '--man=no', ...files], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Quadlet's own generator, when one is at hand (CODEB_QUADLET_BIN, e.g. built from podman
  // v4.4.0's cmd/quadlet, see docs/runtime.md): the service it generates runs the argv we meant.
  const quadlet = process.env.CODEB_QUADLET_BIN;
  it.skipIf(!quadlet)('the Quadlet generator turns the units into the podman run we meant', () => {
    const dir = mkdtempSync(join(tmpdir(), 'codeb-quadlet-'));
    try {
      mkdirSync(join(dir, 'in'));
      mkdirSync(join(dir, 'out'));
      const specs = [...ALL.filter((s) => s.slot === 'blue'), quadletHostile];
      for (const spec of specs) writeFileSync(join(dir, 'in', `${spec.name}.container`), renderQuadlet(spec).content);
      const r = spawnSync(quadlet!, ['-no-kmsg-log', join(dir, 'out')], { encoding: 'utf8', env: { ...process.env, QUADLET_UNIT_DIRS: join(dir, 'in') }, timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      for (const spec of specs) {
        const service = readFileSync(join(dir, 'out', `${spec.name}.service`), 'utf8');
        const argv = parseExecLine(/^ExecStart=(.*)$/m.exec(service)![1]!, { t: '/run', N: spec.name });
        const pairs = (flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));
        expect(argv.slice(0, 2)).toEqual(['/usr/bin/podman', 'run']);
        expect(argv).toContain(`--name=${spec.name}`);
        expect(argv).toContain(`--network=${spec.network}`);
        // (Quadlet writes variables and labels sorted by name.)
        expect(pairs('--env')).toEqual(Object.entries(spec.environment).map(([k, v]) => `${k}=${v}`).sort());
        expect(pairs('--label')).toEqual(Object.entries(spec.labels).map(([k, v]) => `${k}=${v}`).sort());
        expect(pairs('--env-file')).toEqual([spec.envFile]);
        const tail = argv.slice(argv.lastIndexOf(spec.image));
        expect(tail).toEqual([spec.image, ...(spec.command ?? [])]);
        const options = podmanOptionGroups(spec).flat();
        const at = argv.indexOf(options[0]!);
        expect(argv.slice(at, at + options.length)).toEqual(options);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a value with a line break is refused with the variable named', () => {
    const bad = { ...base, environment: { ...base.environment, MULTI: 'one\ntwo' } };
    expect(() => renderSystemdUnit(bad)).toThrow(/environment variable MULTI of food-delivery-app--production--web--blue/);
    expect(() => renderQuadlet(bad)).toThrow(/environment variable MULTI/);
  });
});

describe('fillTemplate', () => {
  it('drops lines of empty placeholders and insists every value is used and every placeholder filled', () => {
    expect(fillTemplate('a={{a}}\n{{b}}\nc', { a: '1', b: '' })).toBe('a=1\nc');
    expect(() => fillTemplate('a={{a}}', {})).toThrow(/no value for \{\{a\}\}/);
    expect(() => fillTemplate('a', { a: '1' })).toThrow(/never used: a/);
  });
});
