import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CodebError } from '../../controller/errors.js';
import { productionModules } from '../../controller/server/bundle.js';
import { chooseStorage, INIT_FACTS_SCRIPT, parseInitFacts, planInit, type InitFacts } from '../../controller/server/init-plan.js';
import { allServerPackages, everyServerPackage } from '../../controller/server/packages.js';
import { planSetup, type SetupObservation } from '../../controller/server/setup.js';
import { planTimers, serverTimers, type TimerObservation } from '../../controller/server/timers.js';
import { networkUnit, serviceUnit, systemdQuote, UNIT_NAMES, type ServerUnit } from '../../controller/server/units.js';
import { stackPaths } from '../../controller/stack/layout.js';
import { s3Part, s3rverKeyFile } from '../../controller/stack/s3.js';

const ALL = allServerPackages();

function facts(over: Partial<InitFacts> = {}, installed: string[] = [], candidates = true): InitFacts {
  return {
    osId: 'debian',
    osVersion: '13',
    osName: 'Debian GNU/Linux 13 (trixie)',
    uid: 0,
    sudo: false,
    pid1: 'systemd',
    apt: true,
    node: installed.includes('nodejs') ? 'v20.19.2' : '',
    bundle: '',
    storage: '',
    installedByInit: [],
    packages: Object.fromEntries(ALL.map((p) => [p, { installed: installed.includes(p), candidate: candidates ? (p === 'nodejs' ? '20.19.2+dfsg-1' : p === 'radosgw' ? '18.2.7+ds-1' : '1.0') : null }])),
    ...over,
  };
}

describe('planInit: which steps a server needs', () => {
  it.each([
    ['bare server', facts(), 'h1', ['apt-install', 'upload', 'services'], ALL],
    ['bare server, package lists never fetched', facts({}, [], false), 'h1', ['apt-update', 'apt-install', 'upload', 'services'], ALL],
    ['ready server, same codeb', facts({ bundle: 'h1' }, ALL), 'h1', ['services'], []],
    ['ready server, other codeb', facts({ bundle: 'h0' }, ALL), 'h1', ['upload', 'services'], []],
    ['only caddy missing', facts({ bundle: 'h1' }, ALL.filter((p) => p !== 'caddy')), 'h1', ['apt-install', 'services'], ['caddy']],
  ])('%s', (_name, f, local, kinds, missing) => {
    const plan = planInit(f, local);
    expect(plan.steps.map((s) => s.kind)).toEqual(kinds);
    const install = plan.steps.find((s) => s.kind === 'apt-install');
    expect(install && 'packages' in install ? install.packages : []).toEqual(missing);
  });

  it('gives way only the distribution services whose packages it installs', () => {
    expect(planInit(facts(), 'h').disableDistro).toEqual(['caddy', 'postgresql', 'redis-server']);
    expect(planInit(facts({}, ['postgresql']), 'h').disableDistro).toEqual(['caddy', 'redis-server']);
  });

  it('and those an earlier init installed (it stopped before setup): their services are still its to disable', () => {
    expect(planInit(facts({ installedByInit: ['caddy', 'radosgw'] }, ALL), 'h').disableDistro).toEqual(['caddy']);
    expect(planInit(facts({}, ALL), 'h').disableDistro).toEqual([]);
  });

  it('uses sudo for a non-root user that has it', () => {
    expect(planInit(facts({ uid: 1000, sudo: true }), 'h').become).toBe('sudo');
    expect(planInit(facts(), 'h').become).toBe('');
  });

  it.each([
    ['unsupported distribution', facts({ osId: 'fedora', osVersion: '40', osName: 'Fedora Linux 40' }), /Fedora Linux 40; codeb server init supports Debian 12 and Ubuntu 24\.04 \(with Node.js 20\+ installed first\), Debian 13\.$/],
    ['old Ubuntu', facts({ osId: 'ubuntu', osVersion: '22.04', osName: 'Ubuntu 22.04' }), /supports/],
    ['no root, no sudo', facts({ uid: 1000, sudo: false }), /not root and cannot use sudo/],
    ['not systemd', facts({ pid1: 'bash' }), /not systemd/],
    ['Debian 12 Node 18', facts({ osVersion: '12', packages: { ...facts().packages, nodejs: { installed: false, candidate: '18.19.0+dfsg-6~deb12u2' } } }), /Node.js 18.19.0.*needs 20/],
    ['Debian 12 Node 18 and radosgw 16.2: the Node refusal (s3rver needs no radosgw, codeb needs Node 20)', facts({ osVersion: '12', packages: { ...facts().packages, nodejs: { installed: false, candidate: '18.19.0+dfsg-6~deb12u2' }, radosgw: { installed: false, candidate: '16.2.15+ds-0+deb12u1' } } }), /Node.js 18.19.0.*needs 20/],
  ])('refuses: %s (exit 1, with a hint)', (_name, f, message) => {
    try {
      planInit(f, 'h');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CodebError);
      expect((err as CodebError).message).toMatch(message);
      expect((err as CodebError).exitCode).toBe(1);
      expect((err as CodebError).hint).toBeTruthy();
    }
  });

  it('keeps an installed Node 20 on Debian 12', () => {
    const f = facts({ osVersion: '12', node: 'v20.18.0', packages: { ...facts().packages, nodejs: { installed: true, candidate: '18.19.0+dfsg-6~deb12u2' } } });
    expect(planInit(f, 'h').steps.map((s) => s.kind)).toContain('services');
  });

  it('keeps a Node 20 installed by hand (/usr/local/bin) on Debian 12, and does not install Debian’s Node 18 beside it', () => {
    const f = facts({ osVersion: '12', node: 'v20.20.2', packages: { ...facts().packages, nodejs: { installed: false, candidate: '18.20.4+dfsg-1~deb12u2' } } });
    const plan = planInit(f, 'h');
    const install = plan.steps.find((s) => s.kind === 'apt-install');
    expect(install && install.kind === 'apt-install' ? install.packages : []).not.toContain('nodejs');
    expect(plan.steps.map((s) => s.kind)).toContain('services');
  });

  // Ubuntu 24.04's netavark 1.4 runs `iptables` for every container network, and no dependency of
  // podman or netavark brings it: without it each container start fails (seen on the noble test host).
  const ubuntu = (installed: string[]): InitFacts => {
    const f = facts({ osId: 'ubuntu', osVersion: '24.04', osName: 'Ubuntu 24.04.3 LTS', node: 'v20.20.2' }, installed);
    f.packages.nodejs = { installed: false, candidate: '18.19.1+dfsg-6ubuntu5' };
    f.packages.iptables = { installed: installed.includes('iptables'), candidate: '1.8.10-3ubuntu2' };
    return f;
  };
  it.each([
    ['bare Ubuntu 24.04 with a Node 20: iptables too, and not Ubuntu’s nodejs', ubuntu([]), ['podman', 'crun', 'netavark', 'aardvark-dns', 'nftables', 'iptables', 'caddy', 'postgresql', 'redis-server', 'radosgw']],
    ['Ubuntu 24.04 with everything but iptables', ubuntu(ALL.filter((p) => p !== 'nodejs')), ['iptables']],
    ['Ubuntu 24.04 that has iptables already', ubuntu([...ALL.filter((p) => p !== 'nodejs'), 'iptables']), []],
    ['Debian 13: no iptables (its netavark drives nftables)', facts(), ALL],
  ])('installs per release: %s', (_name, f, missing) => {
    const install = planInit(f, 'h').steps.find((s) => s.kind === 'apt-install');
    expect(install && install.kind === 'apt-install' ? install.packages : []).toEqual(missing);
  });

  it('asks the server about every release’s packages', () => {
    expect(everyServerPackage()).toEqual([...ALL, 'iptables']);
    expect(allServerPackages({ id: 'ubuntu', version: '24.04' })).toEqual(expect.arrayContaining(['podman', 'iptables']));
    expect(allServerPackages({ id: 'debian', version: '13' })).toEqual(ALL);
  });
});

const RGW = (candidate: string | null, installed = false) => ({ ...facts().packages, radosgw: { installed, candidate } });
const DEBIAN12 = { osVersion: '12', osName: 'Debian GNU/Linux 12 (bookworm)', node: 'v20.20.2' };

describe('chooseStorage: radosgw where 17+ is offered, s3rver otherwise', () => {
  it.each([
    ['Debian 13, radosgw 18.2', facts({ packages: RGW('18.2.7+ds-1') }), 'radosgw', /radosgw 18\.2\.7\+ds-1 has the dbstore backend/],
    ['Ubuntu 24.04, radosgw 19.2 (epoch)', facts({ osId: 'ubuntu', osVersion: '24.04', packages: RGW('2:19.2.0-0ubuntu0.24.04.2') }), 'radosgw', /dbstore backend \(17\+\)/],
    ['radosgw 17.2 (the first with dbstore)', facts({ packages: RGW('17.2.6-1') }), 'radosgw', /dbstore/],
    ['Debian 12, radosgw 16.2', facts({ ...DEBIAN12, packages: RGW('16.2.15+ds-0+deb12u1') }), 's3rver', /radosgw 16\.2\.15\+ds-0\+deb12u1 here has no dbstore backend \(needs 17\+\), so s3rver: one key shared by every project/],
    ['Debian 12, radosgw 16.2 installed by hand', facts({ ...DEBIAN12, packages: RGW('16.2.15+ds-0+deb12u1', true) }), 's3rver', /no dbstore backend/],
    ['Debian 12, package lists never fetched', facts({ ...DEBIAN12, packages: RGW(null) }), 's3rver', /Debian 12's radosgw \(16\.2\) has no dbstore backend/],
    ['Debian 13, package lists never fetched', facts({ packages: RGW(null) }), 'radosgw', /radosgw of Debian GNU\/Linux 13/],
    ['a server on s3rver keeps it when radosgw 17+ appears (an upgraded release)', facts({ storage: 's3rver', packages: RGW('18.2.7+ds-1') }), 's3rver', /kept: this server's buckets are in s3rver/],
    ['a server on radosgw stays on it', facts({ storage: 'radosgw', packages: RGW('18.2.7+ds-1') }), 'radosgw', /dbstore/],
  ])('%s', (_name, f, kind, why) => {
    const choice = chooseStorage(f);
    expect(choice.kind).toBe(kind);
    expect(choice.why).toMatch(why);
    // The plan carries it and installs radosgw only for radosgw.
    const plan = planInit(f, 'h');
    expect(plan.storage).toEqual(choice);
    const install = plan.steps.find((s) => s.kind === 'apt-install');
    const packages = install && install.kind === 'apt-install' ? install.packages : [];
    if (kind === 'radosgw') expect(packages).toContain('radosgw');
    else expect(packages).not.toContain('radosgw');
  });

  it('Debian 12 with a Node 20 on the PATH: no refusal; everything but radosgw and Debian’s Node 18 is installed', () => {
    const f = facts({ ...DEBIAN12, packages: { ...RGW('16.2.15+ds-0+deb12u1'), nodejs: { installed: false, candidate: '18.19.0+dfsg-6~deb12u2' } } });
    const plan = planInit(f, 'h');
    expect(plan.steps.map((s) => s.kind)).toEqual(['apt-install', 'upload', 'services']);
    expect(plan.steps[0]).toMatchObject({ packages: allServerPackages({ id: 'debian', version: '12' }, 's3rver').filter((p) => p !== 'nodejs') });
  });

  it('a ready Debian 12 server with s3rver: nothing to install (radosgw is not missing)', () => {
    const ready = allServerPackages({ id: 'debian', version: '12' }, 's3rver').filter((p) => p !== 'nodejs');
    const f = facts({ ...DEBIAN12, bundle: 'h', storage: 's3rver', packages: { ...facts({}, ready).packages, radosgw: { installed: false, candidate: '16.2.15+ds-0+deb12u1' }, nodejs: { installed: false, candidate: '18.19.0+dfsg-6~deb12u2' } } });
    const plan = planInit(f, 'h');
    expect(plan.steps.map((s) => s.kind)).toEqual(['services']);
    expect(plan.present).not.toContain('radosgw');
  });
});

describe('INIT_FACTS_SCRIPT', () => {
  it('runs in dash and parses: this machine', () => {
    const out = execFileSync('dash', ['-c', INIT_FACTS_SCRIPT, 'x', 'bash', 'surely-no-such-package-x'], { encoding: 'utf8' });
    const f = parseInitFacts(out);
    expect(f.uid).toBe(process.getuid?.());
    expect(f.packages.bash?.installed).toBe(true);
    expect(f.packages['surely-no-such-package-x']).toEqual({ installed: false, candidate: null });
    expect(f.osId).toMatch(/^[a-z]+$/);
  });
  it('reads the stand-in an earlier init set up', () => {
    expect(parseInitFacts('storage=s3rver\nuid=0\n').storage).toBe('s3rver');
    expect(parseInitFacts('storage=\n').storage).toBe('');
  });
  it('reads the packages an earlier init recorded', () => {
    expect(parseInitFacts('installed_by_init=caddy postgresql caddy \nuid=0\n').installedByInit).toEqual(['caddy', 'postgresql']);
    expect(parseInitFacts('installed_by_init=\n').installedByInit).toEqual([]);
  });
});

const FILES = (text: string): Record<ServerUnit, string> => Object.fromEntries(Object.keys(UNIT_NAMES).map((u) => [u, `${u}:${text}`])) as Record<ServerUnit, string>;

function observed(over: Partial<SetupObservation> = {}, file = 'v1', state = { active: true, enabled: true }): SetupObservation {
  return {
    units: Object.fromEntries(Object.keys(UNIT_NAMES).map((u) => [u, { file: file === '' ? null : `${u}:${file}`, ...state }])) as SetupObservation['units'],
    freshCredentials: false,
    settingsText: 'S',
    podmanSocket: { enabled: true, active: true },
    distroToDisable: [],
    codeChanged: false,
    ...over,
  };
}

describe('planSetup: which units to (re)write and (re)start', () => {
  it('nothing when everything is as desired', () => {
    expect(planSetup(observed(), FILES('v1'), 'S')).toEqual([]);
  });
  it('a fresh server: every unit, the Podman socket, settings; network first', () => {
    const steps = planSetup(observed({ settingsText: null, freshCredentials: true, podmanSocket: { enabled: false, active: false } }, ''), FILES('v1'), 'S');
    expect(steps.map((s) => `${s.action} ${s.target}`)).toEqual([
      'write-and-start codeb-network.service',
      'write-and-start codeb-postgres.service',
      'write-and-start codeb-redis.service',
      'write-and-start codeb-s3.service',
      'write-and-start codeb-forwarder.service',
      'write-and-start codeb-caddy.service',
      'enable-socket podman.socket',
      'write settings.json',
    ]);
  });
  it('a changed unit is rewritten and restarted; a stopped one started; a new codeb restarts the forwarder', () => {
    const o = observed({ codeChanged: true });
    o.units.redis = { ...o.units.redis, file: 'old' };
    o.units.caddy = { ...o.units.caddy, active: false };
    expect(planSetup(o, FILES('v1'), 'S').map((s) => `${s.action} ${s.target}`)).toEqual([
      'rewrite-and-restart codeb-redis.service',
      'restart codeb-forwarder.service',
      'start codeb-caddy.service',
    ]);
  });
  it('new credentials (settings.json lost) restart the services that hold them', () => {
    expect(planSetup(observed({ freshCredentials: true, settingsText: null }), FILES('v1'), 'S').map((s) => `${s.action} ${s.target}`)).toEqual([
      'restart codeb-postgres.service',
      'restart codeb-redis.service',
      'restart codeb-s3.service',
      'write settings.json',
    ]);
  });
  it('distribution services it installed are disabled first', () => {
    expect(planSetup(observed({ distroToDisable: ['caddy.service'] }), FILES('v1'), 'S')[0]).toMatchObject({ target: 'caddy.service', action: 'disable' });
  });
});

describe('systemd units', () => {
  it.each([
    ['plain', '"plain"'],
    ['with space', '"with space"'],
    ['quote"and\\back', '"quote\\"and\\\\back"'],
    ['100%', '"100%%"'],
    ['$HOME', '"$$HOME"'],
  ])('systemdQuote(%j)', (word, quoted) => {
    expect(systemdQuote(word)).toBe(quoted);
  });
  it('refuses line breaks', () => {
    expect(() => systemdQuote('a\nb')).toThrow(/line break/);
  });
  it('renders a service from a launch spec', () => {
    const text = serviceUnit({
      description: 'x',
      spec: { command: '/usr/bin/redis-server', args: ['/opt/codeb/stack/redis/redis.conf'], env: { PATH: '/usr/bin', LANG: 'C.UTF-8' }, cwd: '/opt/codeb/stack/redis', uid: 105, gid: 107, umask: 0o077 },
      stopSignal: 'SIGTERM',
      after: [UNIT_NAMES.forwarder],
    });
    expect(text).toContain('ExecStart="/usr/bin/redis-server" "/opt/codeb/stack/redis/redis.conf"');
    expect(text).toContain('Environment="LANG=C.UTF-8"\nEnvironment="PATH=/usr/bin"');
    expect(text).toContain('User=105\nGroup=107\nUMask=0077');
    expect(text).toContain('Requires=codeb-network.service codeb-forwarder.service');
    expect(text).toContain('WantedBy=multi-user.target');
  });
  it('the network unit makes the interface and address at boot', () => {
    const text = networkUnit({ pool: '10.99.0.0/16', servicesAddress: '10.99.0.1', interface: 'cbabc' });
    expect(text).toContain('ExecStart="/usr/sbin/ip" "addr" "replace" "10.99.0.1/32" "dev" "cbabc"');
    expect(text).toContain('Type=oneshot\nRemainAfterExit=yes');
    expect(text).toContain('Before=network-online.target');
  });
});

describe('server timers: the periodic work of every deployment', () => {
  const timers = serverTimers();
  const seen = (over: Partial<TimerObservation> = {}): Record<string, TimerObservation> =>
    Object.fromEntries(timers.map((t) => [t.name, { service: t.service, timer: t.timer, active: true, enabled: true, ...over }]));
  it('one timer per kind of work, each running a --due or whole-server codeb command from /opt/codeb', () => {
    expect(timers.map((t) => [t.name, /^ExecStart=(.*)$/m.exec(t.service)?.[1], /^OnCalendar=(.*)$/m.exec(t.timer)?.[1]])).toEqual([
      ['codeb-monitor', '/opt/codeb/bin/codeb.js monitor', '*-*-* *:*:00 UTC'],
      ['codeb-jobs', '/opt/codeb/bin/codeb.js jobs run --due', '*-*-* *:*:00 UTC'],
      ['codeb-backups', '/opt/codeb/bin/codeb.js backup run --due', '*-*-* *:00/5:00 UTC'],
    ]);
    for (const t of timers) {
      expect(t.service).toContain('Type=oneshot\nEnvironment=CODEB_HOME=/opt/codeb\nEnvironment=CODEB_LOCK_TIMEOUT_MS=');
      expect(t.timer).toContain(`Persistent=true\nUnit=${t.name}.service`);
      expect(t.timer).toContain('WantedBy=timers.target');
    }
    // An unhealthy app is what monitor reports (exit 1), not a failure of its unit.
    expect(timers[0]!.service).toContain('SuccessExitStatus=1');
    expect(timers[2]!.service).toContain('Nice=10\nIOSchedulingClass=idle');
    // Each waits for a deploy's registry lock longer than the default minute, and less than its own timeout.
    expect(timers.map((t) => Number(/CODEB_LOCK_TIMEOUT_MS=(\d+)/.exec(t.service)?.[1]))).toEqual([300_000, 1_800_000, 1_800_000]);
    expect(() => serverTimers({ home: '/opt/co deb' })).toThrow(/plain absolute path/);
  });
  it('planTimers: nothing when all are written, enabled and active; else what each needs', () => {
    expect(planTimers(seen(), timers)).toEqual([]);
    const o = seen();
    o['codeb-monitor'] = { service: null, timer: null, active: false, enabled: false };
    o['codeb-jobs'] = { ...o['codeb-jobs']!, timer: 'old' };
    o['codeb-backups'] = { ...o['codeb-backups']!, enabled: false };
    expect(planTimers(o, timers).map((s) => `${s.action} ${s.target}`)).toEqual(['write-and-start codeb-monitor.timer', 'rewrite-and-restart codeb-jobs.timer', 'start codeb-backups.timer']);
  });
});

describe('productionModules: what of node_modules travels with codeb', () => {
  it('top-level production packages; nested ones inside their parent; dev ones never', () => {
    const lock = {
      packages: {
        '': {},
        'node_modules/pg': {},
        'node_modules/pg/node_modules/x': {},
        'node_modules/vitest': { dev: true },
        'node_modules/vitest/node_modules/y': { dev: true },
        'node_modules/devonly/node_modules/z': {},
        'node_modules/devonly': { dev: true },
        'node_modules/@scope/a': {},
      },
    };
    expect(productionModules(lock)).toEqual(['node_modules/@scope/a', 'node_modules/devonly/node_modules/z', 'node_modules/pg']);
  });
});

describe('s3rver on a server: the key stays out of the unit', () => {
  it('launch leaves the key to the root-only key file; the local stack passes it in the environment', () => {
    const paths = stackPaths('/opt/codeb/stack');
    const creds = { pgPassword: 'p', redisPassword: 'r', s3AccessKey: 'CODEBAKEY', s3SecretKey: 'SECRET-s3-key', fresh: { postgres: false, redis: false, s3: false } };
    const bins = { postgres: 'postgres', initdb: 'initdb', redis: 'redis-server', caddy: 'caddy', podman: 'podman', node: '/usr/local/bin/node', s3rverScript: '/opt/codeb/scripts/stack-s3rver.mjs' };
    const base = { paths, ports: { postgres: 25432, redis: 26379, s3: 29000, http: 80, https: 443 }, network: { pool: '10.99.0.0/16', servicesAddress: '10.99.0.1', interface: 'cbabc' }, env: {}, isRoot: true, s3Kind: 's3rver' as const, creds, bins, notes: [] };
    const server = s3Part.launch({ ...base, server: true });
    const text = serviceUnit({ description: 'x', spec: server, stopSignal: 'SIGTERM' });
    expect(text).not.toContain('SECRET-s3-key');
    expect(text).not.toContain('CODEBAKEY');
    expect(server.args).toEqual(['/opt/codeb/scripts/stack-s3rver.mjs', '--dir', paths.s3.data, '--port', '29000', '--address', '127.0.0.1', '--address', '10.99.0.1']);
    expect(s3rverKeyFile(paths)).toBe('/opt/codeb/stack/s3/key.env');
    expect(s3Part.launch(base).env).toMatchObject({ S3RVER_ACCESS_KEY: 'CODEBAKEY', S3RVER_SECRET_KEY: 'SECRET-s3-key' });
  });
});
