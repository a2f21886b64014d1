/**
 * Run a codeb command ON a server: upload the manifest to a private temp folder there, run the
 * server's own codeb with the same arguments (its registry, lock, secrets and services are the
 * ones that count), stream its output back live, and return its exit code. See docs/remote.md.
 *
 * Every remote command line is an argument array quoted by shellQuote; the three small shell
 * scripts below are constants and receive everything variable as positional parameters.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { actor } from '../registry/store.js';
import { CodebError, EXIT } from '../errors.js';
import { SshSession, type SshOptions } from './ssh.js';
import type { SshTarget } from './target.js';

/** Where the server's codeb is installed (the default), run with the server's `node`. */
export const DEFAULT_REMOTE_CODEB = '/opt/codeb/bin/codeb.js';

/** Stands for the uploaded manifest's path in argv; a NUL byte can never be a real argument. */
export const UPLOADED_MANIFEST = '\0codeb:uploaded-manifest';

/** Set in the server-side codeb's environment: it runs on the target itself (no further SSH). */
export const REMOTE_SESSION_ENV = 'CODEB_REMOTE_SESSION';

export interface RemoteOptions extends SshOptions {
  upload?: { localFile: string; as: 'manifest' };
  /** Path of codeb on the server (--remote-codeb); CODEB_REMOTE_COMMAND overrides the whole prefix. */
  remoteCodeb?: string;
  /** Environment for the remote codeb (names and values are quoted like any argument). */
  remoteEnv?: Record<string, string>;
  /** Ask the remote codeb for a GitHub step summary and return it (deploy/apply under GITHUB_ACTIONS). */
  stepSummary?: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export interface RemoteResult {
  /** The remote codeb's exit code; null when the connection was lost before it ended. */
  code: number | null;
  signal: string | null;
  /** Markdown the remote codeb appended to its step summary (stepSummary only). */
  summary: string;
  lostReason?: string;
  durationMs: number;
}

/** How to start codeb on the server: CODEB_REMOTE_COMMAND (words split on spaces) or `node <remoteCodeb>`. */
export function remoteCodebCommand(remoteCodeb: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const custom = env.CODEB_REMOTE_COMMAND?.trim();
  if (custom) return custom.split(/\s+/);
  return ['node', remoteCodeb ?? DEFAULT_REMOTE_CODEB];
}

/** A file name safe to show in remote messages; anything odd becomes manifest.yaml. */
export function uploadName(localFile: string): string {
  const name = basename(localFile);
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(name) ? name : 'manifest.yaml';
}

// $1 = file name. Reads the manifest from stdin into a fresh 0700 folder; prints the folder.
const UPLOAD = 'umask 077 && d=$(mktemp -d "${TMPDIR:-/tmp}/codeb.XXXXXXXX") && mkdir "$d/in" && cat > "$d/in/$1" && printf "%s\\n" "$d"';
// $1 = temp folder ("" when none), then the command. Runs it, removes the upload even when the
// connection is gone by then, keeps the folder only while a step summary waits to be fetched.
const RUN = 'd=$1; shift; "$@"; rc=$?; if [ -n "$d" ]; then rm -rf -- "$d/in"; [ -s "$d/summary.md" ] || rm -rf -- "$d"; fi; exit $rc';
// $1 = temp folder. Prints the step summary and removes the folder.
const FETCH = 'cat -- "$1/summary.md" 2>/dev/null; rm -rf -- "$1"';

/**
 * Run `codeb <argv>` on the server. UPLOADED_MANIFEST in argv is replaced by the uploaded file's
 * path. Resolves with the remote exit code (or code null and the reason when the connection drops).
 */
export async function runRemote(target: SshTarget, argv: string[], opts: RemoteOptions = {}): Promise<RemoteResult> {
  const started = Date.now();
  const out = opts.stdout ?? process.stdout;
  const err = opts.stderr ?? process.stderr;
  const session = await SshSession.open(target, opts);
  try {
    const codeb = remoteCodebCommand(opts.remoteCodeb, opts.env);
    if (!(opts.env ?? process.env).CODEB_REMOTE_COMMAND?.trim()) {
      const found = await session.exec(['test', '-f', codeb[1]!]);
      if (found.code !== 0 && found.code !== null) {
        throw new CodebError(`codeb is not installed on ${target.display} at ${codeb[1]}.`, {
          hint: `\`codeb server check ${target.display}\` shows what the server lacks and how to install it; --remote-codeb <path> names another install.`,
        });
      }
    }
    let dir = '';
    if (opts.upload || opts.stepSummary) {
      const name = opts.upload ? uploadName(opts.upload.localFile) : 'none';
      const content = opts.upload ? readFileSync(opts.upload.localFile, 'utf8') : '';
      const up = await session.exec(['sh', '-c', UPLOAD, 'codeb-upload', name], { stdin: content });
      dir = up.stdout.trim();
      if (up.code !== 0 || !dir.startsWith('/')) {
        throw new CodebError(`Could not upload ${opts.upload?.localFile ?? 'a temp folder'} to ${target.display}: ${up.code === null ? session.lostReason : up.stderr.trim() || `exit code ${up.code}`}.`, {
          hint: 'The server needs a POSIX shell with mktemp and a writable $TMPDIR or /tmp.',
        });
      }
    }
    const manifestPath = opts.upload ? `${dir}/in/${uploadName(opts.upload.localFile)}` : '';
    const args = argv.map((a) => (a === UPLOADED_MANIFEST ? manifestPath : a));
    if (args.some((a) => a.includes('\0'))) throw new CodebError('UPLOADED_MANIFEST given without an upload.');
    // The audit trail on the server names who asked, not the SSH account it ran as.
    const env: Record<string, string> = { [REMOTE_SESSION_ENV]: '1', CODEB_ACTOR: actor(), ...opts.remoteEnv };
    if (opts.stepSummary) env.GITHUB_STEP_SUMMARY = `${dir}/summary.md`;
    const command = ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...codeb, ...args];
    const run = await session.exec(['sh', '-c', RUN, 'codeb-run', dir, ...command], {
      onStdout: (c) => out.write(c),
      onStderr: (c) => err.write(c),
    });
    if (run.code === null && !run.signal) {
      return { code: null, signal: null, summary: '', lostReason: session.lostReason, durationMs: Date.now() - started };
    }
    if (run.code === 127) {
      throw new CodebError(`The server ${target.display} could not start codeb: \`${codeb.join(' ')}\` was not found there (exit code 127).`, {
        hint: `\`codeb server check ${target.display}\` shows what the server lacks (node on the PATH of non-interactive SSH sessions, codeb).`,
      });
    }
    let summary = '';
    if (opts.stepSummary && dir) summary = (await session.exec(['sh', '-c', FETCH, 'codeb-fetch', dir])).stdout;
    // A signal ends the shell wrapper only if someone killed it on the server.
    return { code: run.code ?? EXIT.failure, signal: run.signal, summary, durationMs: Date.now() - started };
  } finally {
    session.close();
  }
}
