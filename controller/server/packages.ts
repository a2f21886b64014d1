/**
 * The distribution packages `codeb server init` installs (Debian 12/13, Ubuntu 24.04 names), one
 * list per shared service, kept in packages.json so scripts/test.sh can read them too. The test
 * host's rootfs (test/helpers/server-host.ts) pre-downloads exactly these, so init installs them
 * there for real without a mirror: one list, two users.
 *
 * - podman: netavark on Debian 13 drives nftables, which is only a Recommends there (init installs
 *   no recommends), so it is named.
 * - storage: MinIO is not packaged; the stand-in is Ceph's RADOS Gateway (dbstore backend, radosgw
 *   17+). Where only an older radosgw is offered (Debian 12: 16.2), the stand-in is s3rver, which
 *   runs on the node codeb runs on and ships in codeb's bundle: no package (allServerPackages).
 * - a release may need more (`release` in packages.json): Ubuntu 24.04's netavark 1.4 drives
 *   iptables, which nothing it depends on installs.
 */
import lists from './packages.json' with { type: 'json' };

export type ServerComponent = 'podman' | 'caddy' | 'postgres' | 'redis' | 'node' | 'storage';

/** The packages of every release. */
export const SERVER_PACKAGES: Readonly<Record<ServerComponent, readonly string[]>> = lists.server;

/** A distribution release as os-release names it (ID, VERSION_ID): debian 13, ubuntu 24.04. */
export interface Release {
  id: string;
  version: string;
}

const RELEASE_EXTRAS: Readonly<Record<string, Partial<Record<ServerComponent, readonly string[]>>>> = Object.fromEntries(
  Object.entries(lists.release).filter(([k]) => k !== '//'),
) as Record<string, Partial<Record<ServerComponent, readonly string[]>>>;

/** What init installs on `release`, per shared service: every release's packages, then that release's own. */
export function serverPackages(release?: Release): Record<ServerComponent, string[]> {
  const extra = release ? RELEASE_EXTRAS[`${release.id} ${release.version}`] ?? {} : {};
  const out = {} as Record<ServerComponent, string[]>;
  for (const [c, pkgs] of Object.entries(SERVER_PACKAGES) as Array<[ServerComponent, readonly string[]]>) out[c] = [...pkgs, ...(extra[c] ?? [])];
  return out;
}

/**
 * What init installs on `release` (without one: the packages of every release), in install order;
 * with the s3rver stand-in, no storage package.
 */
export function allServerPackages(release?: Release, storage: 'radosgw' | 's3rver' = 'radosgw'): string[] {
  return (Object.entries(serverPackages(release)) as Array<[ServerComponent, string[]]>).filter(([k]) => storage === 'radosgw' || k !== 'storage').flatMap(([, v]) => v);
}

/** Every package init installs on some release: the ones its facts script asks the server about. */
export function everyServerPackage(): string[] {
  const extras = Object.values(RELEASE_EXTRAS).flatMap((e) => Object.values(e).flat());
  return [...new Set([...allServerPackages(), ...extras])];
}

/** What a bare server has before init (a minimal cloud or netinst install): the test host's base. */
export const BARE_SERVER_PACKAGES: readonly string[] = lists.bare;
