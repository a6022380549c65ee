// The engine's account commands: list, add, switch, remove. The engine lends them its active profile and the one
// way it changes it (activate: stop the running one through the ordinary stop path, start the other as its prefs
// say), so switching never needs a new login.
import { loadOrCreateKeys } from '../control/keys.ts';
import { Registrar } from '../control/registrar.ts';
import { buildHostinfo } from '../control/requests.ts';
import { type CommandHandlers, EngineError, type ProfileList, type StatusSnapshot } from '../protocol.ts';
import type { EngineEvents } from './events.ts';
import { loadState, type PersistedState } from './prefs-store.ts';
import { findProfile, type ProfileStore, profileInfo } from './profiles.ts';

export interface ProfileHost {
  readonly store: ProfileStore;
  readonly activeId: string;
  readonly active: PersistedState;
  /** Makes the profile the active one (stopping the current one first). */
  activate(id: string): Promise<void>;
  /** Logs the active profile out (tells its server). */
  logoutActive(): Promise<void>;
  /** Points the active profile at a control server (checks the URL). */
  setControlURL(url: string): Promise<void>;
  controlTimeoutMs?: number;
  events: EngineEvents;
}

export type ProfileCommand = 'listProfiles' | 'addProfile' | 'switchProfile' | 'removeProfile';

/** The engine's handlers of the account commands; add and switch answer with the engine's status afterwards. */
export function profileCommands(
  hostOf: () => ProfileHost,
  status: () => StatusSnapshot,
): Pick<CommandHandlers, ProfileCommand> {
  return {
    listProfiles: async () => listProfiles(hostOf()),
    addProfile: async (a) => {
      const host = hostOf();
      await oneAtATime(host.store, () => addProfile(host, a?.controlURL));
      return status();
    },
    switchProfile: async (a) => {
      const host = hostOf();
      await oneAtATime(host.store, () => switchProfile(host, checkName(a?.profile)));
      return status();
    },
    removeProfile: async (a) => {
      const host = hostOf();
      await oneAtATime(host.store, () => removeProfile(host, checkName(a?.profile)));
      announceProfiles(host);
      return listProfiles(host);
    },
  };
}

const queues = new WeakMap<ProfileStore, Promise<unknown>>();

/** One account change at a time: two switches at once must not interleave their stops and starts. */
function oneAtATime<T>(store: ProfileStore, run: () => Promise<T>): Promise<T> {
  const next = (queues.get(store) ?? Promise.resolve()).then(run, run);
  queues.set(
    store,
    next.catch(() => {}),
  );
  return next;
}

/** Tells listeners (tray, window) the accounts changed. */
export function announceProfiles(host: ProfileHost): void {
  listProfiles(host).then(
    (profiles) => host.events.emit({ type: 'event', event: 'profiles', profiles }),
    (e: Error) => host.events.log('warn', `cannot list the accounts: ${e.message}`),
  );
}

export async function listProfiles(host: ProfileHost): Promise<ProfileList> {
  const { store, activeId } = host;
  const profiles = await Promise.all(
    store.ids().map(async (id) => profileInfo(id, id === activeId ? host.active : await loadState(store.dirOf(id)))),
  );
  return { current: activeId, profiles };
}

/** A new active profile, or the active one when it never logged in (no empty accounts pile up). */
async function addProfile(host: ProfileHost, controlURL: string | undefined): Promise<void> {
  const unused = !host.active.loggedIn && !host.active.loginName;
  if (!unused) {
    if (controlURL !== undefined) checkControlURL(controlURL); // before anything changes
    await host.activate(await host.store.create());
  }
  if (controlURL !== undefined) await host.setControlURL(controlURL);
}

async function switchProfile(host: ProfileHost, name: string): Promise<void> {
  const target = findProfile((await listProfiles(host)).profiles, name);
  if (target.id !== host.activeId) await host.activate(target.id);
}

/** Logs the profile out and deletes it; the active one gives way to the next (or to a fresh, empty one). */
async function removeProfile(host: ProfileHost, name: string): Promise<void> {
  const { store } = host;
  const target = findProfile((await listProfiles(host)).profiles, name);
  if (target.id === host.activeId) {
    await host.logoutActive();
    const next = store.ids().find((id) => id !== target.id) ?? (await store.create());
    await host.activate(next);
  } else {
    await logoutInactive(host, target.id);
  }
  await store.remove(target.id);
}

/** Tells the server of a profile that is not running that it logs out; a server out of reach does not stop it. */
async function logoutInactive(host: ProfileHost, id: string): Promise<void> {
  const dir = host.store.dirOf(id);
  const s = await loadState(dir);
  if (!s.loggedIn || !s.prefs.controlURL) return;
  const keys = await loadOrCreateKeys(dir);
  const registrar = new Registrar({
    stateDir: dir,
    keys,
    hostinfo: () => buildHostinfo(s.prefs.hostname, 0),
    timeoutMs: host.controlTimeoutMs,
  });
  try {
    await registrar.logout(s.prefs.controlURL);
  } catch (e) {
    host.events.log(
      'warn',
      `could not tell ${s.prefs.controlURL} that account ${id} logs out: ${(e as Error).message}`,
    );
  }
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '')
    throw new EngineError('bad-request', 'name an account by its id, login name or tailnet');
  return name;
}

/** The control URL as the engine keeps it (no trailing slash); throws a sentence for anything but http(s). */
export function checkControlURL(url: unknown): string {
  if (typeof url !== 'string' || (url !== '' && !/^https?:\/\/[^\s/]+/.test(url))) {
    throw new EngineError('bad-request', 'the control server URL must start with http:// or https://');
  }
  return url.replace(/\/+$/, '');
}
