/**
 * S3 for the local stack, one of two servers (CODEB_STACK_S3, see chooseS3Kind):
 * - s3rver (default): scripts/stack-s3rver.mjs as a detached node process; buckets and objects,
 *   one shared key;
 * - radosgw: the Ceph RADOS Gateway (Debian 13's radosgw 18, dbstore backend, no Ceph cluster) run
 *   chrooted in the cached rootfs (scripts/build-rootfs.sh radosgw) in a private mount namespace
 *   (scripts/rgw-chroot.sh); users, bucket policies and lifecycle rules. Needs root.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CodebError } from '../errors.js';
import { RgwAdmin } from '../providers/rgw-admin.js';
import { LOOPBACK, packageRoot, type StackPaths } from './layout.js';
import { baseEnv, errorText, httpGet, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

/** Where the stack's gateway data is mounted inside the rootfs (a folder the radosgw package ships). */
const RGW_DATA_IN_ROOTFS = '/var/lib/ceph/radosgw';
/** The gateway user whose key is settings.storage.accessKey: owns every bucket codeb makes. */
export const RGW_ADMIN_USER = 'codeb-admin';

/** Store options shared by radosgw and radosgw-admin: dbstore (SQLite files), no monitors. */
export function rgwStoreArgs(dataDir = RGW_DATA_IN_ROOTFS): string[] {
  return ['--no-mon-config', '--rgw_backend_store=dbstore', '--rgw_config_store=dbstore', `--rgw-data=${dataDir}`];
}

/**
 * The argument list that runs `program` in the rootfs with this stack's data (needs root). Pure.
 * rootfs '/': a server's own radosgw package (`codeb server init`), run directly on the data folder.
 */
export function rgwCommand(rootfs: string, paths: StackPaths, program: 'radosgw' | 'radosgw-admin'): string[] {
  if (rootfs === '/') return [program, ...rgwStoreArgs(paths.s3.rgw)];
  const script = join(packageRoot(), 'scripts', 'rgw-chroot.sh');
  // No --pid/--fork: unshare execs the script, which execs chroot, which execs the program, so the
  // pid the stack records is the gateway's own and `down` signals it directly.
  return ['unshare', '--mount', '--propagation', 'private', 'sh', script, rootfs, paths.s3.rgw, program, ...rgwStoreArgs()];
}

function requireRootfs(ctx: PartContext): string {
  if (!ctx.rgwRootfs) throw new CodebError('The radosgw root filesystem is not known (internal: ensureRootfs was not called).');
  return ctx.rgwRootfs;
}

/**
 * On a server (`codeb server init`) s3rver's key reaches it from this root-only file (systemd's
 * EnvironmentFile=), not from its unit file, which every local user can read.
 */
export const s3rverKeyFile = (paths: StackPaths): string => join(paths.s3.root, 'key.env');

const s3rver: Pick<Part, 'prepare' | 'launch' | 'probe'> = {
  async prepare(ctx: StartContext): Promise<void> {
    mkdirSync(ctx.paths.s3.data, { recursive: true, mode: 0o700 });
    if (ctx.server) {
      const file = s3rverKeyFile(ctx.paths);
      chmodSync(ctx.paths.s3.root, 0o700);
      // 0600 from the first byte (temp file, rename): the key is never readable by anyone but root.
      writeFileSync(`${file}.tmp`, `S3RVER_ACCESS_KEY=${ctx.creds.s3AccessKey}\nS3RVER_SECRET_KEY=${ctx.creds.s3SecretKey}\n`, { mode: 0o600, flag: 'w' });
      chmodSync(`${file}.tmp`, 0o600);
      renameSync(`${file}.tmp`, file);
    }
  },

  launch(ctx: StartContext) {
    return {
      command: ctx.bins.node,
      args: [ctx.bins.s3rverScript, '--dir', ctx.paths.s3.data, '--port', String(ctx.ports.s3), '--address', LOOPBACK, '--address', ctx.network.servicesAddress],
      env: ctx.server ? baseEnv(ctx.env) : baseEnv(ctx.env, { S3RVER_ACCESS_KEY: ctx.creds.s3AccessKey, S3RVER_SECRET_KEY: ctx.creds.s3SecretKey }),
      cwd: ctx.paths.s3.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      const a = await httpGet({ url: `http://${LOOPBACK}:${ctx.ports.s3}/_codeb/health` });
      return a.status === 200 && a.body.includes('codeb-s3rver')
        ? { ok: true }
        : { ok: false, reason: `something else answers on this port (HTTP ${a.status})` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};

const radosgw: Pick<Part, 'prepare' | 'launch' | 'probe'> = {
  /** The data folder, and the admin user with the settings' key (created, or its key replaced). */
  async prepare(ctx: StartContext): Promise<void> {
    if (!ctx.isRoot) throw new CodebError('CODEB_STACK_S3=radosgw needs root (the gateway runs chrooted in a Debian 13 rootfs).', { hint: 'Run `sudo codeb stack up`, or use the default s3rver (CODEB_STACK_S3=s3rver).' });
    mkdirSync(ctx.paths.s3.rgw, { recursive: true, mode: 0o700 });
    const admin = new RgwAdmin(rgwCommand(requireRootfs(ctx), ctx.paths, 'radosgw-admin'));
    const key = { accessKey: ctx.creds.s3AccessKey, secretKey: ctx.creds.s3SecretKey };
    const user = await admin.userInfo(RGW_ADMIN_USER);
    // max-buckets 0 = no limit: every project's buckets belong to this user.
    if (!user) await admin.createUser(RGW_ADMIN_USER, 'codeb (stack admin)', key, 0);
    else await admin.replaceKeys(RGW_ADMIN_USER, key);
  },

  launch(ctx: StartContext) {
    const [command, ...args] = rgwCommand(requireRootfs(ctx), ctx.paths, 'radosgw');
    return {
      command: command!,
      // -d: foreground, log to stderr (the part's log file). Only the S3 API: dbstore has no user
      // admin REST API, and swift/sts/iam/notifications are not offered to tenants. Beast takes
      // several endpoint= entries: loopback for codeb, the services address for containers.
      args: [...args, '-d', '-f', '--rgw_enable_apis=s3', `--rgw_frontends=beast endpoint=${LOOPBACK}:${ctx.ports.s3} endpoint=${ctx.network.servicesAddress}:${ctx.ports.s3}`],
      env: baseEnv(ctx.env),
      cwd: ctx.paths.s3.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      // Anonymous ListBuckets: the gateway answers with an empty list owned by "anonymous".
      const a = await httpGet({ url: `http://${LOOPBACK}:${ctx.ports.s3}/` });
      return a.status === 200 && a.body.includes('<ID>anonymous</ID>')
        ? { ok: true }
        : { ok: false, reason: `something else answers on this port (HTTP ${a.status})` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};

const impl = (ctx: PartContext) => (ctx.s3Kind === 'radosgw' ? radosgw : s3rver);

export const s3Part: Part = {
  name: 's3',
  stopSignal: 'SIGTERM',
  // Both answer within a second or two; the wait ends as soon as the probe succeeds.
  startTimeoutMs: 60_000,
  // Both listen on loopback (codeb) and on the services address (containers).
  address: (ctx) => `${LOOPBACK}:${ctx.ports.s3}, ${ctx.network.servicesAddress}:${ctx.ports.s3}`,
  tcpPorts: (ctx) => [ctx.ports.s3],
  prepare: (ctx) => impl(ctx).prepare(ctx),
  launch: (ctx) => impl(ctx).launch(ctx),
  probe: (ctx) => impl(ctx).probe(ctx),
};
