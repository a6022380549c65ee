// The app's own preferences (the engine keeps its own: control URL, host name, accept DNS, auto-connect),
// in a JSON file of the app's config directory, 0600 in a 0700 directory. A damaged file means defaults.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppPrefs } from '../../preload/api.ts';

export type AppOnlyPrefs = Pick<AppPrefs, 'startAtLogin' | 'startHidden' | 'autoSaveDir' | 'notifications'>;

export const DEFAULT_APP_PREFS: AppOnlyPrefs = {
  startAtLogin: false,
  startHidden: false,
  autoSaveDir: '',
  notifications: true,
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
  };
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
