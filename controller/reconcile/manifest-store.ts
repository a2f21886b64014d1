/**
 * The last manifest applied for each deployment, kept beside the registry (on the server when run
 * over SSH) so `codeb rollback --to <version>` can redeploy an earlier image without the caller
 * having the manifest at hand.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { envFileName } from '../manifest/names.js';

export function storedManifestPath(registryFile: string, projectId: string, env: string): string {
  return join(dirname(registryFile), 'manifests', envFileName(projectId, env).replace(/\.env$/, '.yaml'));
}

export function storeManifest(registryFile: string, projectId: string, env: string, manifestFile: string): void {
  const target = storedManifestPath(registryFile, projectId, env);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  copyFileSync(manifestFile, tmp);
  renameSync(tmp, target);
}

export function hasStoredManifest(registryFile: string, projectId: string, env: string): boolean {
  return existsSync(storedManifestPath(registryFile, projectId, env));
}
