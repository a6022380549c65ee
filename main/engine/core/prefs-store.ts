// Preferences and login state persisted in the state directory (prefs.json, 0600).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writePrivateFile } from '../control/keys.ts';
import type { Prefs } from '../protocol.ts';
import { formatForwardPorts, parseForwardPorts } from '../services/port-forward.ts';

export interface PersistedState {
  prefs: Prefs;
  /** The node key is registered with prefs.controlURL and was valid when last seen. */
  loggedIn: boolean;
  /** The login name the server gave at registration (shown for self when the map has no profile). */
  loginName?: string;
  /** The tailnet's name (its MagicDNS domain) from the latest netmap, to tell accounts apart. */
  tailnet?: string;
}

export const DEFAULT_PREFS: Readonly<Prefs> = Object.freeze({
  controlURL: '',
  hostname: '',
  acceptDNS: true,
  autoConnect: true,
  wantRunning: false,
  exitNodeID: '',
  lastExitNodeID: '',
  exitNodeAllowLANAccess: false,
  routeAll: false,
  advertiseExitNode: false,
  advertiseRoutes: [],
  forwardPorts: [],
});

const FILE = 'prefs.json';

export async function loadState(stateDir: string): Promise<PersistedState> {
  try {
    const raw = JSON.parse(await readFile(join(stateDir, FILE), 'utf8')) as Partial<PersistedState>;
    const p = (raw.prefs ?? {}) as Partial<Prefs>;
    return {
      prefs: {
        controlURL: typeof p.controlURL === 'string' ? p.controlURL : DEFAULT_PREFS.controlURL,
        hostname: typeof p.hostname === 'string' ? p.hostname : DEFAULT_PREFS.hostname,
        acceptDNS: typeof p.acceptDNS === 'boolean' ? p.acceptDNS : DEFAULT_PREFS.acceptDNS,
        autoConnect: typeof p.autoConnect === 'boolean' ? p.autoConnect : DEFAULT_PREFS.autoConnect,
        wantRunning: typeof p.wantRunning === 'boolean' ? p.wantRunning : DEFAULT_PREFS.wantRunning,
        exitNodeID: typeof p.exitNodeID === 'string' ? p.exitNodeID : DEFAULT_PREFS.exitNodeID,
        lastExitNodeID: typeof p.lastExitNodeID === 'string' ? p.lastExitNodeID : DEFAULT_PREFS.lastExitNodeID,
        exitNodeAllowLANAccess:
          typeof p.exitNodeAllowLANAccess === 'boolean'
            ? p.exitNodeAllowLANAccess
            : DEFAULT_PREFS.exitNodeAllowLANAccess,
        routeAll: typeof p.routeAll === 'boolean' ? p.routeAll : DEFAULT_PREFS.routeAll,
        advertiseExitNode:
          typeof p.advertiseExitNode === 'boolean' ? p.advertiseExitNode : DEFAULT_PREFS.advertiseExitNode,
        advertiseRoutes: Array.isArray(p.advertiseRoutes)
          ? p.advertiseRoutes.filter((r): r is string => typeof r === 'string')
          : [],
        forwardPorts: storedForwardPorts(p.forwardPorts),
        ...(typeof p.adminURL === 'string' && p.adminURL ? { adminURL: p.adminURL } : {}),
      },
      loggedIn: raw.loggedIn === true,
      loginName: typeof raw.loginName === 'string' ? raw.loginName : undefined,
      tailnet: typeof raw.tailnet === 'string' ? raw.tailnet : undefined,
    };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && !(e instanceof SyntaxError)) throw e;
    return { prefs: { ...DEFAULT_PREFS, advertiseRoutes: [], forwardPorts: [] }, loggedIn: false };
  }
}

/** A copy whose lists are not shared with the original. */
export function copyPrefs(p: Prefs): Prefs {
  return { ...p, advertiseRoutes: [...p.advertiseRoutes], forwardPorts: [...p.forwardPorts] };
}

/** The stored forwards, when they still pass the checks (a hand-edited file with a bad one forwards nothing). */
function storedForwardPorts(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  try {
    return formatForwardPorts(parseForwardPorts(v));
  } catch {
    return [];
  }
}

export async function saveState(stateDir: string, s: PersistedState): Promise<void> {
  await writePrivateFile(join(stateDir, FILE), `${JSON.stringify(s, null, 2)}\n`);
}
