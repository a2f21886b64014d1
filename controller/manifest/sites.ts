/**
 * The sites of one deployment (pure): the main site (the environment's domain and aliases, with
 * the web services that have no host names of their own) and one site per group of host names
 * named in `services.<s>.domains` that the same services share. Within a site, services split by
 * routePath as on the main domain.
 */
import type { Deployment, ResolvedService, Tls } from './types.js';

export interface DeploymentSite {
  domains: string[];
  tls: Tls;
  /** Web services with a port, in manifest order. */
  services: ResolvedService[];
  main: boolean;
}

const routed = (s: ResolvedService) => s.type === 'web' && s.port !== null;

export function deploymentSites(d: Pick<Deployment, 'domain' | 'aliases' | 'tls' | 'services'>): DeploymentSite[] {
  const web = d.services.filter(routed);
  const main: DeploymentSite = { domains: [d.domain, ...d.aliases], tls: d.tls, services: web.filter((s) => s.domains.length === 0), main: true };
  // host -> the services naming it; hosts with the same services (and TLS) form one site.
  const byHost = new Map<string, ResolvedService[]>();
  for (const s of web) for (const h of s.domains) byHost.set(h, [...(byHost.get(h) ?? []), s]);
  const groups = new Map<string, DeploymentSite>();
  for (const [host, services] of byHost) {
    const key = `${services.map((s) => s.name).join(',')}|${services[0]!.tls}`;
    const g = groups.get(key);
    if (g) g.domains.push(host);
    else groups.set(key, { domains: [host], tls: services[0]!.tls, services, main: false });
  }
  return [main, ...groups.values()];
}

/** Every host name a deployment holds: domain, aliases and the services' own. */
export function deploymentHosts(d: Pick<Deployment, 'domain' | 'aliases' | 'services'>): string[] {
  return [...new Set([d.domain, ...d.aliases, ...d.services.flatMap((s) => (routed(s) ? s.domains : []))])];
}

/** What cannot be routed as written, per service (pure; empty: fine). */
export function siteConflicts(d: Pick<Deployment, 'domain' | 'aliases' | 'tls' | 'services'>): Array<{ service: string; domain: string | null; message: string }> {
  const out: Array<{ service: string; domain: string | null; message: string }> = [];
  const mainHosts = new Set([d.domain, ...d.aliases]);
  const byHost = new Map<string, ResolvedService[]>();
  for (const s of d.services.filter(routed)) {
    for (const h of s.domains) {
      if (mainHosts.has(h)) out.push({ service: s.name, domain: h, message: `${h} is the environment's ${h === d.domain ? 'domain' : 'alias'}; a service's own host names must differ from it (use routePath to put the service under the main domain)` });
      const others = byHost.get(h) ?? [];
      const samePath = others.find((o) => o.routePath === s.routePath);
      if (samePath) out.push({ service: s.name, domain: h, message: `"${samePath.name}" already takes ${s.routePath ?? 'every path'} at ${h}; give one of them a routePath` });
      const otherTls = others.find((o) => o.tls !== s.tls);
      if (otherTls) out.push({ service: s.name, domain: h, message: `"${otherTls.name}" serves ${h} with tls ${otherTls.tls}, this service with tls ${s.tls}; services sharing a host name need the same tls` });
      byHost.set(h, [...others, s]);
    }
  }
  return out;
}
