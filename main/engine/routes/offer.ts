// What this node offers the tailnet (subnets, and both default routes as exit node): the prefs that say so, the
// Hostinfo.RoutableIPs list control receives, what control approved (our own AllowedIPs beyond our addresses), and
// which destinations peers may reach through us — the subnets as advertised, the default routes with this host's own
// LANs cut out, as tailscaled does (a "guest Wi-Fi": the internet yes, a LAN only when advertised as a subnet).
import { networkInterfaces } from 'node:os';
import type { Prefs } from '../protocol.ts';
import { type Cidr, formatCidr, parseCidr, RangeSet } from './prefix-set.ts';

export const EXIT_ROUTES = ['0.0.0.0/0', '::/0'] as const;

/** Never reachable through an exit node's default route (tailscaled's removeFromDefaultRoute). */
const NEVER_THROUGH_DEFAULT = [
  '192.168.0.0/16',
  '172.16.0.0/12',
  '10.0.0.0/8',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '100.64.0.0/10',
  'fe80::/10',
  'ff00::/8',
  'fd7a:115c:a1e0::/48',
];
const TAILNET = ['100.64.0.0/10', 'fd7a:115c:a1e0::/48'].map((t) => parseCidr(t) as Cidr);

/** Hostinfo.RoutableIPs as tailscaled sends them: the subnets, then both default routes when offering an exit node. */
export function advertisedRoutes(prefs: Pick<Prefs, 'advertiseRoutes' | 'advertiseExitNode'>): string[] {
  return [...(prefs.advertiseRoutes ?? []), ...(prefs.advertiseExitNode ? EXIT_ROUTES : [])];
}

/** One address of this host's network interfaces, as os.networkInterfaces() gives it. */
export interface InterfaceAddress {
  cidr: string | null;
  internal: boolean;
}

function hostInterfaceAddresses(): InterfaceAddress[] {
  return Object.values(networkInterfaces()).flatMap((list) => list ?? []);
}

/**
 * tailscaled's shrinkDefaultRoute: a default route minus the prefixes of this host's interfaces (their own addresses
 * put back: peers may reach the exit node's public address, not its LAN), minus what never goes through one.
 */
export function shrinkDefaultRoute(route: Cidr, interfaces: InterfaceAddress[]): Cidr[] {
  const set = new RangeSet(route.version).add(route);
  const hosts: Cidr[] = [];
  for (const ifa of interfaces) {
    const c = ifa.cidr ? parseCidr(ifa.cidr) : undefined;
    if (!c || c.version !== route.version || TAILNET.some((t) => contains(t, c))) continue;
    const width = c.version === 4 ? 32 : 128;
    if (c.bits === width) continue;
    set.remove(c);
    const host = parseCidr((ifa.cidr ?? '').split('/')[0] ?? '');
    if (host) hosts.push(host);
  }
  for (const h of hosts) set.add(h);
  for (const t of NEVER_THROUGH_DEFAULT) set.remove(parseCidr(t) as Cidr);
  return set.prefixes();
}

function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.version !== inner.version || inner.bits < outer.bits) return false;
  const width = outer.version === 4 ? 32 : 128;
  const shift = BigInt(width - outer.bits);
  return inner.base >> shift === outer.base >> shift;
}

/** Destinations beyond our own addresses that peers may reach through us (the filter's "local" networks). */
export function offeredLocalNets(
  advertised: string[],
  interfaces: InterfaceAddress[] = hostInterfaceAddresses(),
): string[] {
  const out: string[] = [];
  for (const r of advertised) {
    const c = parseCidr(r);
    if (!c) continue;
    if (c.bits === 0) out.push(...shrinkDefaultRoute(c, interfaces).map(formatCidr));
    else out.push(formatCidr(c));
  }
  return out;
}
