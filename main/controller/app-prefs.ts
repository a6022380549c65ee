// The app's own preferences (the engine keeps its own: control URL, host name, accept DNS, auto-connect),
// in a JSON file of the app's config directory, 0600 in a 0700 directory. A damaged file means defaults.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppPrefs } from '../../preload/api.ts';
import { checkListenAddress, DEFAULT_HTTP_PROXY_LISTEN, DEFAULT_SOCKS5_LISTEN } from '../../preload/listen-address.ts';

export type AppOnlyPrefs = Pick<
  AppPrefs,
  'startAtLogin' | 'startHidden' | 'autoSaveDir' | 'notifications' | 'socks5Listen' | 'httpProxyListen'
>;

export const DEFAULT_APP_PREFS: AppOnlyPrefs = {
  startAtLogin: false,
  startHidden: false,
  autoSaveDir: '',
  notifications: true,
  socks5Listen: DEFAULT_SOCKS5_LISTEN,
  httpProxyListen: DEFAULT_HTTP_PROXY_LISTEN,
};

/** Keeps the known fields of the right type; anything else falls back to its default. */
export function parseAppPrefs(value: unknown): AppOnlyPrefs {
  const v = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const bool = (k: keyof AppOnlyPrefs) => (typeof v[k] === 'boolean' ? (v[k] as boolean) : DEFAULT_APP_PREFS[k]);
  return {
    startAtLogin: bool('startAtLogin') as boolean,
    startHidden: bool('startHidden') as boolean,
    autoSaveDir: typeof v.autoSaveDir === 'string' ? v.autoSaveDir : DEFAULT_APP_PREFS.autoSaveDir,
    notifications: bool('notifications') as boolean,
    socks5Listen: listen(v.socks5Listen, DEFAULT_APP_PREFS.socks5Listen),
    httpProxyListen: listen(v.httpProxyListen, DEFAULT_APP_PREFS.httpProxyListen),
  };
}

/** A proxy address from the file, used only when it still passes the window's check (a hand-edited file cannot open
 *  a proxy to the network). */
function listen(value: unknown, fallback: string): string {
  if (typeof value !== 'string') return fallback;
  const checked = checkListenAddress(value, 'proxy');
  return 'address' in checked ? checked.address : fallback;
}

export async function loadAppPrefs(path: string): Promise<AppOnlyPrefs> {
  try {
    return parseAppPrefs(JSON.parse(await readFile(path, 'utf8')));
  } catch {
    return { ...DEFAULT_APP_PREFS };
  }
}

/** Writes atomically (temp file + rename) so a crash never leaves half a file. */
export async function saveAppPrefs(path: string, prefs: AppOnlyPrefs): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  await writeFile(tmp, `${JSON.stringify(prefs, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
