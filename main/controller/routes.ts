// The window's and the tray's side of exit nodes and subnet routes: the engine's route prefs as the window sees
// them, and the checks on what a window (never trusted) sends for them before the engine hears of it.
import { ApiError, type AppPrefs } from '../../preload/api.ts';
import { checkRoutes } from '../../preload/routes.ts';
import type { Prefs, StatusSnapshot } from '../engine/protocol.ts';
import type { AppOnlyPrefs } from './app-prefs.ts';

/** The engine's preferences a window may set, besides the connection ones views.ts checks. */
export const ROUTE_KEYS = [
  'exitNodeID',
  'exitNodeAllowLANAccess',
  'routeAll',
  'advertiseExitNode',
  'advertiseRoutes',
  'forwardPorts',
] as const;
export type RouteKey = (typeof ROUTE_KEYS)[number];

export function isRouteKey(k: string): k is RouteKey {
  return (ROUTE_KEYS as readonly string[]).includes(k);
}

/** Subnets one device may offer: far more than any LAN has, few enough that a bad window cannot flood control. */
const MAX_ROUTES = 256;

/** The engine's part of AppPrefs, with defaults while no engine has answered yet. */
export function enginePrefsView(p: Prefs | undefined): Omit<AppPrefs, keyof AppOnlyPrefs> {
  return {
    controlURL: p?.controlURL ?? '',
    hostname: p?.hostname ?? '',
    acceptDNS: p?.acceptDNS ?? true,
    autoConnect: p?.autoConnect ?? true,
    exitNodeID: p?.exitNodeID ?? '',
    lastExitNodeID: p?.lastExitNodeID ?? '',
    exitNodeAllowLANAccess: p?.exitNodeAllowLANAccess ?? false,
    routeAll: p?.routeAll ?? false,
    advertiseExitNode: p?.advertiseExitNode ?? false,
    advertiseRoutes: [...(p?.advertiseRoutes ?? [])],
    forwardPorts: [...(p?.forwardPorts ?? [])],
  };
}

/** One route pref as the engine gets it, or a typed error naming the field. The exit node must be a peer that
 *  offers one now (the window only lists those), or '' for none. */
export function checkRoutePref(key: RouteKey, value: unknown, status: StatusSnapshot | undefined): unknown {
  if (key === 'exitNodeID') {
    if (typeof value !== 'string') throw new ApiError('bad-request', 'exitNodeID must be text');
    if (value === '' || value === status?.prefs.exitNodeID) return value;
    const peer = status?.peers.find((p) => p.stableID === value);
    if (!peer) throw new ApiError('bad-request', 'That device is not in this tailnet.', { field: 'exitNodeID' });
    if (!peer.exitNodeOption) {
      throw new ApiError('bad-request', `The device ${peer.name} does not offer to be an exit node.`, {
        field: 'exitNodeID',
      });
    }
    return value;
  }
  if (key === 'advertiseRoutes') {
    if (!Array.isArray(value) || !value.every((r) => typeof r === 'string')) {
      throw new ApiError('bad-request', 'advertiseRoutes must be a list of routes');
    }
    if (value.length > MAX_ROUTES) {
      throw new ApiError('bad-request', `At most ${MAX_ROUTES} routes can be offered.`, { field: 'advertiseRoutes' });
    }
    const checked = checkRoutes(value);
    if ('error' in checked) throw new ApiError('bad-request', checked.error, { field: 'advertiseRoutes' });
    return checked.routes;
  }
  if (key === 'forwardPorts') {
    // Only the shape is checked here: the engine checks the entries with the shared parser and its sentence (one
    // per bad entry) is what the window shows.
    if (!Array.isArray(value) || !value.every((r) => typeof r === 'string')) {
      throw new ApiError('bad-request', 'forwardPorts must be a list of port forwards');
    }
    return value;
  }
  if (typeof value !== 'boolean') throw new ApiError('bad-request', `${key} must be true or false`);
  return value;
}
