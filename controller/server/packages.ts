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
 *   runs on the node codeb runs on and ships in codeb's bundle: no package (serverPackages).
 */
import lists from './packages.json' with { type: 'json' };

export type ServerComponent = 'podman' | 'caddy' | 'postgres' | 'redis' | 'node' | 'storage';

export const SERVER_PACKAGES: Readonly<Record<ServerComponent, readonly string[]>> = lists.server;

export function allServerPackages(): string[] {
  return Object.values(SERVER_PACKAGES).flat();
}

/** The packages a server needs with this object storage stand-in (s3rver needs none of its own). */
export function serverPackages(storage: 'radosgw' | 's3rver'): string[] {
  return (Object.entries(SERVER_PACKAGES) as Array<[ServerComponent, readonly string[]]>).filter(([k]) => storage === 'radosgw' || k !== 'storage').flatMap(([, v]) => v);
}

/** What a bare server has before init (a minimal cloud or netinst install): the test host's base. */
export const BARE_SERVER_PACKAGES: readonly string[] = lists.bare;
