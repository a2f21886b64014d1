/**
 * systemd units for a ContainerSpec, rendered from templates/ (no template engine):
 *   - a Quadlet `.container` unit for Podman >= 4.4 (the server default), and
 *   - a plain `.service` unit that runs `podman run` in the foreground, for Podman 4.3
 *     (Debian 12) which has no Quadlet.
 * Both run the same container as the Podman API runtime: the deployment's network (codeb creates
 * it before the units start), the slot port published on 127.0.0.1, no capabilities, the env
 * file, the same labels, CPU and memory limits, log size. Every value that goes into a unit passes systemdQuote.
 * See docs/runtime.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodebError, EXIT } from '../errors.js';
import { READ_ONLY_TMPFS, type ContainerSpec } from './types.js';

export type UnitKind = 'quadlet' | 'systemd';

/** Quadlet arrived in Podman 4.4. */
export const QUADLET_MIN_VERSION = '4.4.0';
export const PODMAN_BIN = '/usr/bin/podman';

/**
 * The [Container] keys this renderer may write: each exists in Quadlet since Podman 4.4.0, the
 * oldest Quadlet codeb targets (podman-systemd.unit(5) of v4.4, and supportedContainerKeys in
 * pkg/systemd/quadlet/quadlet.go at tag v4.4.0). Newer keys (HealthCmd, LogDriver: 4.5;
 * StopTimeout: 5.0; LogOpt: 5.2; Memory: 5.5) and options without any key (--cpus) go through
 * PodmanArgs=, which every Quadlet version passes to `podman run` unchanged.
 */
export const QUADLET_CONTAINER_KEYS = ['ContainerName', 'Image', 'Network', 'Volume', 'EnvironmentFile', 'Environment', 'Label', 'PodmanArgs', 'Exec'] as const;

export interface RenderedUnit {
  kind: UnitKind;
  /** File name: <container>.container (goes to /etc/containers/systemd/) or <container>.service. */
  fileName: string;
  content: string;
}

// ------------------------------------------------------------------ version choice

/** Parse "4.3.1", "podman version 5.0.0-rc1", "v4.9.3" into [major, minor, patch]. */
export function parsePodmanVersion(text: string): [number, number, number] {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) {
    throw new CodebError(`Cannot read a Podman version from ${JSON.stringify(text.slice(0, 80))}.`, { hint: 'Check `podman --version` on the server.' });
  }
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

export function compareVersions(a: string, b: string): number {
  const x = parsePodmanVersion(a);
  const y = parsePodmanVersion(b);
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** Quadlet from Podman 4.4 on; a plain systemd unit running `podman run` before that. */
export function chooseUnitKind(podmanVersion: string): UnitKind {
  return compareVersions(podmanVersion, QUADLET_MIN_VERSION) >= 0 ? 'quadlet' : 'systemd';
}

// ------------------------------------------------------------------ quoting

/** Characters that need neither quotes nor escapes anywhere in a unit file. */
const PLAIN_WORD = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * One word (argument) for a systemd command line (systemd.service "Command lines") or for the
 * Quadlet keys parsed the same way (Exec=, PodmanArgs=, Environment=, Label=, EnvironmentFile=),
 * which Quadlet copies into the generated ExecStart= unchanged:
 *   - `%` -> `%%` (specifiers are expanded anywhere in the line, quoted or not),
 *   - `$` -> `$$` (environment variables are substituted in Exec lines),
 *   - `\` -> `\\` and `"` -> `\"`, then the word is put in double quotes unless it is plain
 *     (so spaces, `'`, `;`, `#`, `&`, `|`, `(`, backticks stay literal: there is no shell),
 *   - line breaks and other control characters cannot be written and are refused.
 * alwaysQuote: quote plain words too (the server's service units, controller/server/units.ts, are
 * written that way; the same text every init means no restart).
 */
export function systemdQuote(word: string, what = 'value', alwaysQuote = false): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(word)) {
    throw new CodebError(`The ${what} contains a line break or another control character, which a systemd unit cannot carry.`, {
      exitCode: EXIT.invalid,
      hint: 'Remove it from the manifest value (put multi-line data in a file or in the env file instead).',
    });
  }
  if (!alwaysQuote && PLAIN_WORD.test(word)) return word;
  const escaped = word.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return `"${escaped}"`;
}

/** Text outside command lines (e.g. Description=): only specifiers need escaping; no line breaks. */
export function systemdText(text: string, what = 'value'): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) {
    throw new CodebError(`The ${what} contains a line break or another control character, which a systemd unit cannot carry.`, { exitCode: EXIT.invalid });
  }
  return text.replace(/%/g, '%%');
}

/**
 * The inverse, as systemd reads an Exec line: line continuations joined, `%%` -> `%` and the
 * given specifiers replaced (others are refused: codeb writes none in values), words split on whitespace with double or
 * single quotes removed and C escapes applied, then `$$` -> `$` in each word. Used by the tests
 * to prove that what codeb writes is read back as the argv it meant.
 */
export function parseExecLine(line: string, specifiers: Record<string, string> = {}): string[] {
  const joined = line.replace(/\\\n/g, ' ');
  let text = '';
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i]!;
    if (c !== '%') {
      text += c;
      continue;
    }
    const next = joined[i + 1] ?? '';
    if (next === '%') text += '%';
    else if (specifiers[next] !== undefined) text += specifiers[next];
    else throw new Error(`unexpected specifier %${next} at ${i}`);
    i++;
  }
  const words: string[] = [];
  let i = 0;
  const simpleEscapes: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'", ' ': ' ', s: ' ' };
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    // An unquoted lone ";" separates commands in systemd; codeb never means that.
    if (text[i] === ';' && (i + 1 >= text.length || /\s/.test(text[i + 1]!))) throw new Error(`unquoted ; (command separator) at ${i}`);
    let word = '';
    let quote: string | null = null;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\\') {
        const n = text[i + 1];
        if (n === undefined) throw new Error('trailing backslash');
        if (n === 'x') {
          word += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16));
          i += 3;
        } else if (simpleEscapes[n] !== undefined) {
          word += simpleEscapes[n];
          i++;
        } else throw new Error(`unsupported escape \\${n}`);
      } else if (quote) {
        if (c === quote) quote = null;
        else word += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (/\s/.test(c)) break;
      else word += c;
    }
    if (quote) throw new Error('unbalanced quotes');
    if (/\$(?!\$)/.test(word.replace(/\$\$/g, ''))) throw new Error(`unescaped $ in ${JSON.stringify(word)}`);
    words.push(word.replace(/\$\$/g, '$'));
  }
  return words;
}

// ------------------------------------------------------------------ podman options

/** A Go duration for podman flags: 1s, 500ms, 20s. */
export function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Memory for `podman --memory` (powers of 1024: 256m = 256 MiB); exact bytes when not whole. */
export function podmanMemory(bytes: number): string {
  for (const [unit, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

const IMAGE_REF = /^[a-z0-9][a-z0-9._:/@-]{0,254}$/i;

function checkImage(spec: ContainerSpec): string {
  if (!IMAGE_REF.test(spec.image)) {
    throw new CodebError(`Image reference ${JSON.stringify(spec.image)} of ${spec.name} cannot go into a unit.`, { exitCode: EXIT.invalid });
  }
  return spec.image;
}

/**
 * `podman run` options both unit kinds carry as arguments (Quadlet: PodmanArgs=), in a fixed
 * order, one group per line of the unit. No --restart: systemd restarts the unit (Restart=).
 */
export function podmanOptionGroups(spec: ContainerSpec): string[][] {
  const groups: string[][] = [
    ['--pull=never'],
    // The slot port on the host's loopback only (the forwarder and codeb's health probes).
    ...(spec.port !== null ? [[`--publish=127.0.0.1:${spec.port}:${spec.port}`]] : []),
    [
      ...spec.security.capDrop.map((c) => `--cap-drop=${c.toLowerCase()}`),
      ...spec.security.capAdd.map((c) => `--cap-add=${c.toLowerCase()}`),
      ...(spec.security.noNewPrivileges ? ['--security-opt=no-new-privileges'] : []),
      ...(spec.security.readOnlyRootfs ? ['--read-only', `--tmpfs=${READ_ONLY_TMPFS}`] : []),
    ],
    [`--cpus=${spec.cpu}`, `--memory=${podmanMemory(spec.memoryBytes)}`],
    // k8s-file keeps `podman logs` working and rotates at max-size; Podman keeps one file
    // (max-file is Docker's json-file option and is ignored by Podman).
    ['--log-driver=k8s-file', `--log-opt=max-size=${spec.logs.maxSizeBytes}`],
    [`--stop-timeout=${spec.stopTimeoutSeconds}`],
  ];
  const hc = spec.healthCheck;
  // Only command checks run inside the container; HTTP checks are probed by codeb from outside
  // (the image may have no HTTP client), uptime checks need nothing.
  if (hc.kind === 'command' && hc.command.length) {
    groups.push([
      `--health-cmd=${JSON.stringify(hc.command)}`,
      `--health-interval=${goDuration(hc.intervalMs)}`,
      `--health-timeout=${goDuration(hc.timeoutMs)}`,
      `--health-start-period=${goDuration(hc.startPeriodMs)}`,
      `--health-retries=${hc.retries}`,
    ]);
  }
  return groups;
}

/** The full argv of the plain unit's `podman run`, foreground, removed on exit. */
export function podmanRunArgv(spec: ContainerSpec): string[] {
  const argv = [PODMAN_BIN, 'run', '--rm', `--name=${spec.name}`, `--network=${plainNetwork(spec)}`, ...plainVolumes(spec).map((v) => `--volume=${v}`)];
  for (const g of podmanOptionGroups(spec)) argv.push(...g);
  if (spec.envFile) argv.push(`--env-file=${spec.envFile}`);
  for (const [k, v] of Object.entries(spec.environment)) argv.push(`--env=${k}=${v}`);
  for (const [k, v] of Object.entries(spec.labels)) argv.push(`--label=${k}=${v}`);
  argv.push(checkImage(spec));
  if (spec.command) argv.push(...spec.command);
  return argv;
}

// ------------------------------------------------------------------ templates

function findTemplatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'templates');
    if (existsSync(join(candidate, 'quadlet.container.tmpl'))) return candidate;
    dir = dirname(dir);
  }
  throw new CodebError('Cannot find the unit templates (templates/quadlet.container.tmpl).', { hint: 'Run codeb from its checkout or installed package.' });
}

const templateCache = new Map<string, string>();
export function loadTemplate(name: string): string {
  let t = templateCache.get(name);
  if (t === undefined) {
    t = readFileSync(join(findTemplatesDir(), name), 'utf8');
    templateCache.set(name, t);
  }
  return t;
}

/**
 * Fill {{name}} placeholders. A placeholder alone on its line whose value is empty removes the
 * line. Every placeholder must have a value and every value must be used, so a template and its
 * renderer cannot drift apart silently.
 */
export function fillTemplate(template: string, values: Record<string, string>, templateName = 'template'): string {
  const used = new Set<string>();
  const lines: string[] = [];
  for (const line of template.split('\n')) {
    const alone = /^\{\{([a-zA-Z]+)\}\}$/.exec(line);
    if (alone && values[alone[1]!] === '') {
      used.add(alone[1]!);
      continue;
    }
    lines.push(
      line.replace(/\{\{([a-zA-Z]+)\}\}/g, (_, key: string) => {
        const v = values[key];
        if (v === undefined) throw new Error(`${templateName}: no value for {{${key}}}`);
        used.add(key);
        return v;
      }),
    );
  }
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new Error(`${templateName}: values never used: ${unused.join(', ')}`);
  return lines.join('\n');
}

/** Container names (names.containerName) are plain words; Quadlet reads ContainerName= unquoted. */
function plainName(spec: ContainerSpec): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(spec.name)) throw new CodebError(`Container name ${JSON.stringify(spec.name)} cannot go into a unit.`, { exitCode: EXIT.invalid });
  return spec.name;
}

/** Network names (names.networkName) are plain words too. */
function plainNetwork(spec: ContainerSpec): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(spec.network)) throw new CodebError(`Network name ${JSON.stringify(spec.network)} cannot go into a unit.`, { exitCode: EXIT.invalid });
  return spec.network;
}

/**
 * Named volumes as `<volume>:<path>` (no :U: Podman chowns a new volume once, at its first mount).
 * Volume names come from names.volumeName and paths from the schema's pattern: neither can hold a
 * colon, comma, space or quote, checked again here.
 */
function plainVolumes(spec: ContainerSpec): string[] {
  return spec.volumes.map((v) => {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(v.volume) || !/^(?:\/[A-Za-z0-9._@+-]+)+$/.test(v.path)) {
      throw new CodebError(`Volume ${JSON.stringify(v.volume)} at ${JSON.stringify(v.path)} of ${spec.name} cannot go into a unit.`, { exitCode: EXIT.invalid });
    }
    return `${v.volume}:${v.path}`;
  });
}

function header(spec: ContainerSpec): string {
  const l = spec.labels;
  return systemdText(`codeb ${spec.projectId}/${spec.env} ${spec.service} (${spec.serviceType}, ${spec.slot}, version ${l['codeb.version'] ?? '-'})`, 'version');
}

/** Seconds systemd waits for a stop: podman's own grace period plus time to tear down. */
function timeoutStopSec(spec: ContainerSpec): number {
  return spec.stopTimeoutSeconds + 10;
}

const CONTINUE = ' \\\n    ';

export function renderQuadlet(spec: ContainerSpec): RenderedUnit {
  assertWritable(spec, 'quadlet');
  const q = (w: string, what: string) => systemdQuote(w, `${what} of ${spec.name}`);
  const content = fillTemplate(
    loadTemplate('quadlet.container.tmpl'),
    {
      description: header(spec),
      name: plainName(spec),
      image: checkImage(spec),
      network: plainNetwork(spec),
      volumes: plainVolumes(spec)
        .map((v) => `Volume=${v}`)
        .join('\n'),
      environmentFile: spec.envFile ? `EnvironmentFile=${q(spec.envFile, 'env file path')}` : '',
      environment: Object.entries(spec.environment)
        .map(([k, v]) => `Environment=${q(`${k}=${v}`, `environment variable ${k}`)}`)
        .join('\n'),
      labels: Object.entries(spec.labels)
        .map(([k, v]) => `Label=${q(`${k}=${v}`, `label ${k}`)}`)
        .join('\n'),
      podmanArgs: podmanOptionGroups(spec)
        .map((g) => `PodmanArgs=${g.map((a) => q(a, 'podman option')).join(' ')}`)
        .join('\n'),
      exec: spec.command ? `Exec=${spec.command.map((a) => q(a, 'command')).join(' ')}` : '',
      restart: spec.restart,
      timeoutStopSec: String(timeoutStopSec(spec)),
    },
    'quadlet.container.tmpl',
  );
  return { kind: 'quadlet', fileName: `${spec.name}.container`, content };
}

/**
 * Every value a unit would carry, checked up front so an error names the variable, not an argument.
 * Quadlet (checked against the 4.4 generator) re-quotes what it read only when a word has spaces,
 * quotes, backslashes or control characters: an empty argument ends its word list (it and every
 * argument after it are lost) and a lone ";" is written unquoted, where systemd reads it as a
 * command separator. Both are refused for Quadlet units; plain units quote them correctly.
 */
function assertWritable(spec: ContainerSpec, kind: UnitKind): void {
  const q = (w: string, what: string) => systemdQuote(w, `${what} of ${spec.name}`);
  for (const [k, v] of Object.entries(spec.environment)) q(`${k}=${v}`, `environment variable ${k}`);
  for (const [k, v] of Object.entries(spec.labels)) q(`${k}=${v}`, `label ${k}`);
  for (const a of spec.command ?? []) q(a, 'command');
  if (spec.envFile) q(spec.envFile, 'env file path');
  for (const a of spec.healthCheck.command) q(a, 'health check command');
  if (kind === 'quadlet') {
    for (const a of spec.command ?? []) {
      if (a === '' || a === ';') {
        throw new CodebError(`The command of ${spec.name} has an argument ${JSON.stringify(a)}, which a Quadlet unit cannot carry.`, {
          exitCode: EXIT.invalid,
          hint: 'Quadlet drops empty arguments and writes a lone ";" as a command separator: change the command, or run this service with the plain systemd unit kind.',
        });
      }
    }
  }
}

export function renderSystemdUnit(spec: ContainerSpec): RenderedUnit {
  assertWritable(spec, 'systemd');
  const q = (w: string, what: string) => systemdQuote(w, `${what} of ${spec.name}`);
  const argv = podmanRunArgv(spec);
  // One option per continued line; the image and its command on the last line.
  const imageAt = argv.indexOf(checkImage(spec), 3);
  const optionLines = argv.slice(0, imageAt).map((a) => q(a, 'podman argument'));
  const head = `${optionLines[0]} ${optionLines[1]}`; // /usr/bin/podman run
  const tail = argv.slice(imageAt).map((a) => q(a, 'command'));
  const execStart = [head, ...optionLines.slice(2), tail.join(' ')].join(CONTINUE);
  const content = fillTemplate(
    loadTemplate('podman-run.service.tmpl'),
    {
      description: header(spec),
      name: plainName(spec),
      podman: PODMAN_BIN,
      execStart,
      stopTimeout: String(spec.stopTimeoutSeconds),
      restart: spec.restart,
      timeoutStopSec: String(timeoutStopSec(spec)),
    },
    'podman-run.service.tmpl',
  );
  return { kind: 'systemd', fileName: `${spec.name}.service`, content };
}
