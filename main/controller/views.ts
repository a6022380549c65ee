// Pure shaping between the engine's types and the window's: peers as the window lists them, and the checks
// on preferences the window sends (never trusted: a window is a sandboxed web page).
import type { AppPrefs, PeerView } from '../../preload/api.ts';
import { ApiError } from '../../preload/api.ts';
import { checkListenAddress } from '../../preload/listen-address.ts';
import type { Prefs, StatusSnapshot } from '../engine/protocol.ts';
import type { AppOnlyPrefs } from './app-prefs.ts';
import { checkRoutePref, isRouteKey } from './routes.ts';

export function peerViews(s: StatusSnapshot | undefined): PeerView[] {
  if (!s) return [];
  const targets = new Set(s.fileTargets ?? []);
  return s.peers
    .map((p) => ({
      id: p.id,
      name: p.name,
      dnsName: p.dnsName,
      addresses: p.addresses,
      os: p.os,
      user: p.user,
      online: p.online,
      lastSeen: p.lastSeen,
      keyExpiry: p.keyExpiry,
      expired: p.expired,
      path: p.path,
      // The engine names targets by MagicDNS name (FQDN); older engines by short name.
      fileTarget: targets.has(p.dnsName) || targets.has(p.name),
      stableID: p.stableID,
      exitNodeOption: p.exitNodeOption,
      routes: p.routes,
      ...(p.exitNode ? { exitNode: true } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

const ENGINE_KEYS = ['controlURL', 'hostname', 'acceptDNS', 'autoConnect'] as const;
const APP_KEYS = [
  'startAtLogin',
  'startHidden',
  'autoSaveDir',
  'notifications',
  'socks5Listen',
  'httpProxyListen',
] as const;
/** The proxy address prefs, as the user knows them. */
const LISTEN_NAMES = { socks5Listen: 'The SOCKS5 proxy', httpProxyListen: 'The HTTP proxy' } as const;

/** Splits a partial AppPrefs into the engine's and the app's parts, refusing unknown keys and wrong types; the
 *  status, when known, is what an exit node choice is checked against. */
export function validatePrefs(
  arg: unknown,
  status?: StatusSnapshot,
): { engine: Partial<Prefs>; app: Partial<AppOnlyPrefs> } {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) {
    throw new ApiError('bad-request', 'setPrefs needs an object of preferences');
  }
  const engine: Record<string, unknown> = {};
  const app: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(arg)) {
    if (isRouteKey(k)) {
      engine[k] = checkRoutePref(k, v, status);
      continue;
    }
    if (k === 'lastExitNodeID') throw new ApiError('bad-request', 'lastExitNodeID is kept by the engine');
    const key = k as keyof AppPrefs;
    const wantString =
      key === 'controlURL' ||
      key === 'hostname' ||
      key === 'autoSaveDir' ||
      key === 'socks5Listen' ||
      key === 'httpProxyListen';
    if (!(ENGINE_KEYS as readonly string[]).includes(k) && !(APP_KEYS as readonly string[]).includes(k)) {
      throw new ApiError('bad-request', `unknown preference ${JSON.stringify(k)}`);
    }
    if (wantString ? typeof v !== 'string' : typeof v !== 'boolean') {
      throw new ApiError('bad-request', `${k} must be ${wantString ? 'text' : 'true or false'}`);
    }
    if (key === 'hostname' && !/^[A-Za-z0-9-]{0,63}$/.test(v as string)) {
      throw new ApiError('bad-request', 'A device name has only letters, digits and dashes (at most 63).', {
        field: 'hostname',
      });
    }
    if (key === 'autoSaveDir' && v !== '' && !isAbsolutePath(v as string)) {
      throw new ApiError('bad-request', 'The folder must be a full path, like /home/you/Downloads.', {
        field: 'autoSaveDir',
      });
    }
    if (key === 'socks5Listen' || key === 'httpProxyListen') {
      const checked = checkListenAddress(v as string, LISTEN_NAMES[key]);
      if ('error' in checked) throw new ApiError('bad-request', checked.error, { field: key });
      app[k] = checked.address;
      continue;
    }
    ((ENGINE_KEYS as readonly string[]).includes(k) ? engine : app)[k] = key === 'hostname' ? (v as string).trim() : v;
  }
  return { engine: engine as Partial<Prefs>, app: app as Partial<AppOnlyPrefs> };
}

/** True for http(s) URLs with a host; javascript:, file:, data:, custom schemes and garbage are refused. Both the
 *  controller and the Electron shell (links leaving the window) open only these. */
export function isWebUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

function isAbsolutePath(p: string): boolean {
  return p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\\\');
}
