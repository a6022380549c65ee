// Which of a peer's approved routes this node routes to it (tailscale's routerConfig, docs/protocol/routes.md): its own tailnet
// addresses always; both default routes only while it is the chosen exit node; its subnets only with
// accept-routes. Control sends every approved route in AllowedIPs whatever we chose; the choice is ours.
import type { TailNode } from '../control/tailcfg.ts';
import { DEFAULT_ROUTE_V4, DEFAULT_ROUTE_V6 } from './cidr.ts';

export interface RouteChoice {
  /** StableID of the chosen exit node ('' = none). */
  exitNodeID: string;
  /** Accept peers' subnet routes. */
  routeAll: boolean;
}

/** The peer's StableID as the prefs name it (the numeric ID when a server sends none). */
export function stableIdOf(n: TailNode): string {
  return typeof n.StableID === 'string' && n.StableID !== '' ? n.StableID : String(n.ID);
}

function isDefault(p: string): boolean {
  return p === DEFAULT_ROUTE_V4 || p === DEFAULT_ROUTE_V6;
}

/** The peer offers an exit node: control approved both default routes for it. */
export function offersExitNode(n: TailNode): boolean {
  const a = n.AllowedIPs ?? [];
  return a.includes(DEFAULT_ROUTE_V4) && a.includes(DEFAULT_ROUTE_V6);
}

/** The prefixes to put in the peer's WireGuard AllowedIPs, as CIDR text. */
export function selectAllowedIPs(n: TailNode, choice: RouteChoice): string[] {
  const own = new Set((n.Addresses ?? []).filter((a) => typeof a === 'string'));
  const isExit = choice.exitNodeID !== '' && stableIdOf(n) === choice.exitNodeID && offersExitNode(n);
  const out: string[] = [];
  for (const p of n.AllowedIPs ?? n.Addresses ?? []) {
    if (typeof p !== 'string') continue;
    if (isDefault(p)) {
      if (isExit) out.push(p);
    } else if (own.has(p) || isOwnHost(p, own) || choice.routeAll) {
      out.push(p);
    }
  }
  return out;
}

/** A host prefix of one of the peer's own addresses ("100.64.0.2/32" for "100.64.0.2/32" or a bare address). */
function isOwnHost(p: string, own: Set<string>): boolean {
  if (!/\/(32|128)$/.test(p)) return false;
  const bare = p.slice(0, p.indexOf('/'));
  for (const a of own) if (a === bare || a.startsWith(`${bare}/`)) return true;
  return false;
}

/** The subnets (default routes left out) the data path routes into the tunnel for the peers chosen. */
export function routedPrefixes(peers: Iterable<TailNode>, choice: RouteChoice): string[] {
  const out = new Set<string>();
  for (const n of peers) {
    const own = new Set((n.Addresses ?? []).filter((a) => typeof a === 'string'));
    for (const p of selectAllowedIPs(n, choice)) if (!isDefault(p) && !own.has(p) && !isOwnHost(p, own)) out.add(p);
  }
  return [...out].sort();
}
