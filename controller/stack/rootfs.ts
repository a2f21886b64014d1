/**
 * The cached Debian (and Ubuntu) root filesystems of scripts/build-rootfs.sh (debootstrap once per set of
 * inputs, reused afterwards): the stack's radosgw runs in one. The script prints the path; its
 * progress lines go to our stderr, so a first build (about a minute) is not silent.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CodebError } from '../errors.js';
import { packageRoot } from './layout.js';

export type RootfsVariant = 'base' | 'radosgw' | 'server';

/** Variables the build script reads; nothing else of ours reaches it. */
const PASSED = ['CODEB_ROOTFS_CACHE', 'CODEB_ROOTFS_SUITE', 'CODEB_DEBIAN_MIRROR', 'CODEB_UBUNTU_MIRROR', 'CODEB_ROOTFS_PACKAGES', 'CODEB_ROOTFS_DOWNLOAD', 'http_proxy', 'https_proxy'];

export function rootfsScript(): string {
  return join(packageRoot(), 'scripts', 'build-rootfs.sh');
}

/** Build (first time) or find (later) the rootfs of `variant`; resolves to its folder. */
export function ensureRootfs(variant: RootfsVariant, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const childEnv: NodeJS.ProcessEnv = { PATH: env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
  for (const k of PASSED) if (env[k]) childEnv[k] = env[k];
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [rootfsScript(), variant], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      process.stderr.write(c);
    });
    child.on('error', (e) => reject(new CodebError(`Cannot run ${rootfsScript()}: ${e.message}`)));
    child.on('close', (code) => {
      const path = out.trim().split('\n').pop() ?? '';
      if (code === 0 && path.startsWith('/')) return resolve(path);
      reject(
        new CodebError(`Could not build the ${env.CODEB_ROOTFS_SUITE || 'trixie'} ${variant} root filesystem (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ') || 'no message'}`, {
          hint: `Run \`sudo bash ${rootfsScript()} ${variant}\` to see the whole build; it needs root, debootstrap (scripts/setup.sh) and the distribution's mirror.`,
        }),
      );
    });
  });
}
