// What quad-100 knows, built from the netmap (docs/protocol/services.md §3.3): every node's FQDN (and short name when MagicDNS
// is on) with its addresses, reverse entries, ExtraRecords, the suffixes answered authoritatively, the search
// domains, and the upstream resolvers by route. Pure: netmap in, lookup tables out.
import type { DNSConfig, TailNode as Node } from '../control/tailcfg.ts';
import { parseAddress } from '../packet/ip.ts';
import { stableIdOf } from '../routes/allowed-ips.ts';

export interface HostAddrs {
  /** The node's name as an FQDN without the trailing dot, lowercase. */
  fqdn: string;
  v4: string[];
  v6: string[];
}

export interface DnsTable {
  /** The MagicDNS suffix: self's name without its first label ("tailnet.test"). */
  suffix: string;
  proxied: boolean;
  /** Name (lowercase, no trailing dot) → addresses: FQDNs, short names, ExtraRecords. */
  hosts: Map<string, HostAddrs>;
  /** Address text → FQDN, for PTR. */
  reverse: Map<string, string>;
  /** Suffixes answered locally: unknown names in them are NXDOMAIN, never forwarded. */
  authoritative: string[];
  /** Route suffix ("" = the default route) → upstream resolvers ("ip" or "ip:port"), most specific first. */
  routes: Array<{ suffix: string; resolvers: string[] }>;
  searchDomains: string[];
}

const lower = (name: string): string => name.toLowerCase().replace(/\.+$/, '');

/** The reverse zones of the tailnet ranges: 64–127.100.in-addr.arpa and fd7a:115c:a1e0::/48. */
export const TAILNET_REVERSE_ZONES = [
  ...Array.from({ length: 64 }, (_, i) => `${64 + i}.100.in-addr.arpa`),
  '0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa',
];

export function buildDnsTable(
  self: Node | undefined,
  peers: Iterable<Node>,
  dns: DNSConfig | undefined,
  /** The OS's previous nameservers: the default route when control sets no resolvers (docs/protocol/services.md §3.4.5). */
  osResolvers: string[] = [],
  /** The chosen exit node's StableID ('' = none): its DoH answers the other names when it offers one (§3.3 step 8). */
  exitNodeID = '',
): DnsTable {
  const selfName = typeof self?.Name === 'string' ? lower(self.Name) : '';
  const suffix = selfName.includes('.') ? selfName.slice(selfName.indexOf('.') + 1) : '';
  const proxied = dns?.Proxied === true;
  const selfAddrs = addressesOf(self);
  const selfV6Only = selfAddrs.v4.length === 0 && selfAddrs.v6.length > 0;
  const hosts = new Map<string, HostAddrs>();
  const reverse = new Map<string, string>();
  for (const node of [...(self ? [self] : []), ...peers]) {
    if (typeof node.Name !== 'string' || node.Name === '') continue;
    const fqdn = lower(node.Name);
    const all = addressesOf(node);
    // A dual-stack node answers AAAA with no data unless self is IPv6-only (tailscale's default; §3.3 step 3).
    const v6 = selfV6Only || all.v4.length === 0 ? all.v6 : [];
    const v4 = selfV6Only ? [] : all.v4;
    const entry = { fqdn, v4, v6 };
    hosts.set(fqdn, entry);
    if (proxied && suffix && fqdn.endsWith(`.${suffix}`)) {
      const short = fqdn.slice(0, -suffix.length - 1);
      if (!hosts.has(short)) hosts.set(short, entry);
    }
    for (const a of [...all.v4, ...all.v6]) reverse.set(a, fqdn);
  }
  const authoritative: string[] = [];
  for (const r of Array.isArray(dns?.ExtraRecords) ? dns.ExtraRecords : []) {
    if (!r || typeof r.Name !== 'string' || typeof r.Value !== 'string') continue;
    if (r.Type && r.Type !== 'A' && r.Type !== 'AAAA') continue;
    let bytes: Uint8Array;
    try {
      bytes = parseAddress(r.Value);
    } catch {
      continue;
    }
    const name = lower(r.Name);
    const e = hosts.get(name) ?? { fqdn: name, v4: [], v6: [] };
    (bytes.length === 4 ? e.v4 : e.v6).push(r.Value);
    hosts.set(name, e);
    authoritative.push(name);
  }
  const routes: DnsTable['routes'] = [];
  // Through an exit node that offers DoH, the other names go there (not to a LAN resolver the tunnel now cuts off,
  // nor leaked past it), unless control marked resolvers for use with an exit node; only routes with such survive.
  const exitDoH = exitNodeDoH(selfAddrs, peers, exitNodeID);
  for (const [k, list] of Object.entries(dns?.Routes ?? {})) {
    if (exitDoH && !(Array.isArray(list) && list.some((r) => r?.UseWithExitNode === true))) continue;
    const resolvers = resolverAddrs(list);
    if (resolvers.length === 0) authoritative.push(lower(k));
    else routes.push({ suffix: lower(k), resolvers });
  }
  if (proxied) authoritative.push(...(suffix ? [suffix] : []), ...TAILNET_REVERSE_ZONES);
  const defaults = resolverAddrs(dns?.Resolvers);
  const fallback = resolverAddrs(dns?.FallbackResolvers);
  if (exitDoH) {
    const withExit = resolverAddrs(
      (Array.isArray(dns?.Resolvers) ? dns.Resolvers : []).filter((r) => r?.UseWithExitNode),
    );
    routes.push({ suffix: '', resolvers: withExit.length ? withExit : [exitDoH] });
  } else {
    routes.push({ suffix: '', resolvers: defaults.length ? defaults : fallback.length ? fallback : osResolvers });
  }
  routes.sort((a, b) => b.suffix.length - a.suffix.length);
  const searchDomains = (Array.isArray(dns?.Domains) ? dns.Domains : []).filter((d) => typeof d === 'string');
  return { suffix, proxied, hosts, reverse, authoritative: [...new Set(authoritative)], routes, searchDomains };
}

/** Whether `name` (lowercase, no trailing dot) is `zone` or below it. */
export function inZone(name: string, zone: string): boolean {
  return zone === '' || name === zone || name.endsWith(`.${zone}`);
}

function addressesOf(node: Node | undefined): { v4: string[]; v6: string[] } {
  const out = { v4: [] as string[], v6: [] as string[] };
  for (const a of Array.isArray(node?.Addresses) ? node.Addresses : []) {
    if (typeof a !== 'string') continue;
    const ip = a.split('/')[0] ?? '';
    (ip.includes(':') ? out.v6 : out.v4).push(ip);
  }
  return out;
}

/** The DoH URL on the exit node's PeerAPI (http://ip:port/dns-query), when it offers one in a family self has. */
export function exitNodeDoH(
  self: { v4: string[]; v6: string[] },
  peers: Iterable<Node>,
  exitNodeID: string,
): string | undefined {
  if (!exitNodeID) return undefined;
  let node: Node | undefined;
  for (const p of peers) if (stableIdOf(p) === exitNodeID) node = p;
  const services = Array.isArray(node?.Hostinfo?.Services) ? node.Hostinfo.Services : [];
  if (!services.some((s) => s?.Proto === 'peerapi-dns-proxy')) return undefined;
  const port = (proto: string) => {
    const n = services.find((s) => s?.Proto === proto)?.Port;
    return typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 65536 ? n : 0;
  };
  const addrs = addressesOf(node);
  if (self.v4.length && addrs.v4[0] && port('peerapi4')) return `http://${addrs.v4[0]}:${port('peerapi4')}/dns-query`;
  if (self.v6.length && addrs.v6[0] && port('peerapi6')) return `http://[${addrs.v6[0]}]:${port('peerapi6')}/dns-query`;
  return undefined;
}

/** Plain-IP and ip:port resolvers (DoH and peer-API resolvers are not supported: skipped). */
function resolverAddrs(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const r of list) {
    const addr = (r as { Addr?: unknown } | null)?.Addr;
    if (typeof addr !== 'string' || addr.includes('/')) continue;
    out.push(addr);
  }
  return out;
}
