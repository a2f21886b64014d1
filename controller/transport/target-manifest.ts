/**
 * The codeb that runs ON a server (reached over SSH, or started there with --host local) is the
 * server the manifest names for the environment: it works on a copy of the manifest in which that
 * server's host is `local`. Only that scalar changes, so lines and columns in messages still match.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isMap, isSeq, parseDocument } from 'yaml';

export function targetedCopy(file: string, serverName: string, dir: string): string {
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const servers = doc.get('servers');
  if (isSeq(servers)) {
    for (const s of servers.items) if (isMap(s) && s.get('name') === serverName) s.set('host', 'local');
  }
  const copy = join(dir, basename(file));
  writeFileSync(copy, doc.toString(), { mode: 0o600 });
  return copy;
}
