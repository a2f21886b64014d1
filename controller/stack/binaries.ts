/** Finding the programs the local stack runs, and saying which Debian package provides a missing one. */
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { CodebError } from '../errors.js';
import { packageRoot, type PartName } from './layout.js';

export interface Binaries {
  postgres: string;
  initdb: string;
  redis: string;
  caddy: string;
  podman: string;
  node: string;
  s3rverScript: string;
}

interface Missing {
  program: string;
  pkg: string;
}

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findProgram(name: string, env: NodeJS.ProcessEnv = process.env, extraDirs: string[] = []): string | undefined {
  const dirs = [...extraDirs, ...(env.PATH ?? '').split(delimiter).filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const file = join(dir, name);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

/** Debian keeps each major version in /usr/lib/postgresql/<major>/bin; take the newest with both programs. */
function postgresBinDirs(env: NodeJS.ProcessEnv): string[] {
  const root = '/usr/lib/postgresql';
  const candidates = env.CODEB_STACK_PG_BINDIR
    ? [env.CODEB_STACK_PG_BINDIR]
    : existsSync(root)
      ? readdirSync(root)
          .filter((v) => /^\d+$/.test(v))
          .sort((a, b) => Number(b) - Number(a))
          .map((v) => join(root, v, 'bin'))
      : [];
  return candidates.filter((d) => isExecutable(join(d, 'postgres')) && isExecutable(join(d, 'initdb')));
}

/** Which programs each part needs and the Debian package that ships them. */
export function findBinaries(parts: readonly PartName[], env: NodeJS.ProcessEnv = process.env): Binaries {
  const missing: Missing[] = [];
  const need = (program: string, pkg: string, dirs: string[] = []): string => {
    const found = findProgram(program, env, dirs);
    if (!found) missing.push({ program, pkg });
    return found ?? program;
  };
  const want = new Set(parts);
  const pgDirs = postgresBinDirs(env);
  const pgDir = pgDirs[0];
  const out: Binaries = {
    postgres: 'postgres',
    initdb: 'initdb',
    redis: 'redis-server',
    caddy: 'caddy',
    podman: 'podman',
    node: process.execPath,
    s3rverScript: '',
  };
  if (want.has('postgres')) {
    if (pgDir) {
      out.postgres = join(pgDir, 'postgres');
      out.initdb = join(pgDir, 'initdb');
    } else if (env.CODEB_STACK_PG_BINDIR) {
      missing.push({ program: `postgres and initdb in CODEB_STACK_PG_BINDIR=${env.CODEB_STACK_PG_BINDIR}`, pkg: 'postgresql' });
    } else {
      out.postgres = need('postgres', 'postgresql');
      out.initdb = need('initdb', 'postgresql');
    }
  }
  if (want.has('redis')) out.redis = need('redis-server', 'redis-server');
  if (want.has('caddy')) out.caddy = need('caddy', 'caddy');
  if (want.has('podman')) {
    out.podman = need('podman', 'podman');
    need('runc', 'runc'); // containers.conf pins runtime = "runc"
  }
  const root = packageRoot();
  if (want.has('s3')) {
    out.s3rverScript = join(root, 'scripts', 'stack-s3rver.mjs');
    try {
      createRequire(join(root, 'package.json')).resolve('s3rver');
    } catch {
      throw new CodebError('The npm package s3rver (the local S3 server) is not installed.', {
        hint: `Run \`npm ci\` in ${root} (or \`bash scripts/setup.sh\`, which does it for you).`,
      });
    }
  }
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((m) => m.pkg))];
    const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
    throw new CodebError(
      `The local stack needs programs that are not installed: ${missing
        .map((m) => `${m.program} (Debian package ${m.pkg})`)
        .join(', ')}.`,
      {
        hint:
          `Install everything the stack needs with \`${sudo}bash ${join(root, 'scripts', 'setup.sh')}\`, ` +
          `or just these with \`${sudo}apt-get install -y ${pkgs.join(' ')}\`.`,
      },
    );
  }
  return out;
}
