// The route prefs a setPrefs call brings (exit node, LAN access, accept-routes, what we advertise): checked and
// written into the prefs. An exit node naming no peer is kept (it may come back; status and health say so);
// clearing it remembers it as the last one, for the pickers' "last used".
import { EngineError, type Prefs } from '../protocol.ts';
import { parseAdvertiseRoutes, RouteError } from './cidr.ts';

export interface RoutePrefsChange {
  /** What the data path routes changed (exit node, LAN access, accept-routes). */
  routing: boolean;
  /** What we advertise changed (for Hostinfo.RoutableIPs). */
  advertising: boolean;
}

const MAX_ID = 256;

function bool(p: Partial<Prefs>, key: keyof Prefs): boolean | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new EngineError('bad-request', `${key} must be true or false`);
  return v;
}

/** Checks every route pref in p first (nothing changes on a bad one), then applies them to prefs. */
export function applyRoutePrefs(prefs: Prefs, p: Partial<Prefs>): RoutePrefsChange {
  let exitNodeID: string | undefined;
  if (p.exitNodeID !== undefined) {
    if (typeof p.exitNodeID !== 'string' || p.exitNodeID.length > MAX_ID) {
      throw new EngineError('bad-request', 'exitNodeID must be a peer’s StableID (or empty for none)');
    }
    exitNodeID = p.exitNodeID.trim();
  }
  const allowLAN = bool(p, 'exitNodeAllowLANAccess');
  const routeAll = bool(p, 'routeAll');
  const advertiseExitNode = bool(p, 'advertiseExitNode');
  let advertiseRoutes: string[] | undefined;
  if (p.advertiseRoutes !== undefined) {
    if (!Array.isArray(p.advertiseRoutes) || p.advertiseRoutes.some((r) => typeof r !== 'string')) {
      throw new EngineError('bad-request', 'advertiseRoutes must be a list of CIDR prefixes');
    }
    try {
      advertiseRoutes = parseAdvertiseRoutes(p.advertiseRoutes);
    } catch (e) {
      if (e instanceof RouteError) throw new EngineError('bad-request', `advertised route: ${e.message}`);
      throw e;
    }
  }
  const before = JSON.stringify([prefs.exitNodeID, prefs.exitNodeAllowLANAccess, prefs.routeAll]);
  const advertisedBefore = JSON.stringify([prefs.advertiseExitNode, prefs.advertiseRoutes]);
  if (exitNodeID !== undefined && exitNodeID !== prefs.exitNodeID) {
    if (exitNodeID === '' && prefs.exitNodeID !== '') prefs.lastExitNodeID = prefs.exitNodeID;
    prefs.exitNodeID = exitNodeID;
  }
  if (allowLAN !== undefined) prefs.exitNodeAllowLANAccess = allowLAN;
  if (routeAll !== undefined) prefs.routeAll = routeAll;
  if (advertiseExitNode !== undefined) prefs.advertiseExitNode = advertiseExitNode;
  if (advertiseRoutes !== undefined) prefs.advertiseRoutes = advertiseRoutes;
  return {
    routing: before !== JSON.stringify([prefs.exitNodeID, prefs.exitNodeAllowLANAccess, prefs.routeAll]),
    advertising: advertisedBefore !== JSON.stringify([prefs.advertiseExitNode, prefs.advertiseRoutes]),
  };
}
