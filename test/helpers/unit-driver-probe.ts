/**
 * Runs on a test host (bundled by test/integration/runtime-units.test.ts): the real UnitRuntime
 * driver against the host's systemd and Podman, one operation per call.
 *   node probe.cjs <quadlet|systemd> start     (a ContainerSpec as JSON on stdin)
 *   node probe.cjs <quadlet|systemd> remove <container>
 *   node probe.cjs <quadlet|systemd> halt <container>     (then resume <container>)
 * `default` instead of a kind: the driver a manifest without `runtime` gets on this host (decided
 * from the host's own facts, as apply does). Prints one JSON line: {ok: true, kind, state} (start),
 * {ok: true} (remove), {ok: true, wasRunning} (halt), {ok: true, state} (resume) or {ok: false, message, hint}.
 */
import { readFileSync } from 'node:fs';
import { CodebError } from '../../controller/errors.js';
import { gatherRuntimeFacts } from '../../controller/runtime/facts.js';
import { PodmanApiRuntime } from '../../controller/runtime/podman-api.js';
import { decideRuntime } from '../../controller/runtime/select.js';
import type { ContainerSpec } from '../../controller/runtime/types.js';
import { UnitRuntime } from '../../controller/runtime/unit-runtime.js';

async function main(): Promise<void> {
  const [asked, op, name] = process.argv.slice(2);
  let kind = asked;
  if (asked === 'default') {
    const d = decideRuntime(undefined, await gatherRuntimeFacts());
    kind = d.ok ? d.kind : `refused (${d.reason})`;
  }
  if (kind !== 'quadlet' && kind !== 'systemd') throw new Error(`unknown kind ${kind}`);
  const rt = new UnitRuntime(kind, new PodmanApiRuntime('/run/podman/podman.sock'));
  try {
    if (op === 'start') {
      const spec = JSON.parse(readFileSync(0, 'utf8')) as ContainerSpec;
      console.log(JSON.stringify({ ok: true, kind, state: await rt.start(spec) }));
    } else if (op === 'remove' && name) {
      await rt.remove(name, 5);
      console.log(JSON.stringify({ ok: true }));
    } else if (op === 'halt' && name) {
      console.log(JSON.stringify({ ok: true, wasRunning: await rt.halt(name) }));
    } else if (op === 'resume' && name) {
      console.log(JSON.stringify({ ok: true, state: await rt.resume(name) }));
    } else throw new Error(`unknown operation ${op}`);
  } catch (err) {
    const e = err as Error;
    console.log(JSON.stringify({ ok: false, message: e.message, hint: err instanceof CodebError ? (err.hint ?? null) : null }));
  } finally {
    await rt.close();
  }
}
void main();
