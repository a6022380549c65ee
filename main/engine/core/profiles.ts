// Accounts ("profiles"): each has its own directory <stateDir>/profiles/<id>/ (0700) holding its keys and prefs,
// so each keeps its own control server, node and login. profiles.json at the top lists them in order and names the
// active one; it is written atomically (0600). A state directory from before profiles (keys.json and prefs.json at
// its top) becomes the first profile by renames on the same file system: no key is copied, none is lost.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureStateDir, loadOrCreateKeys, type NodeKeys, writePrivateFile } from '../control/keys.ts';
import { EngineError, type ProfileInfo } from '../protocol.ts';
import { loadState, type PersistedState } from './prefs-store.ts';

const INDEX_FILE = 'profiles.json';
const PROFILES_DIR = 'profiles';
/** What a profile directory holds; the same names a flat state directory used before profiles. */
const PROFILE_FILES = ['keys.json', 'prefs.json'] as const;
/** Four hex digits, as tailscale's profile IDs. */
const ID_PATTERN = /^[0-9a-f]{4}$/;
const MAX_PROFILES = 64;

interface IndexFile {
  current: string;
  ids: string[];
}

export class ProfileStore {
  private constructor(
    private readonly stateDir: string,
    private index: IndexFile,
  ) {}

  /** Opens (or sets up) the profiles of stateDir: migrates a flat layout, repairs a lost or stale index. */
  static async open(stateDir: string): Promise<ProfileStore> {
    await ensureStateDir(stateDir);
    await ensureStateDir(join(stateDir, PROFILES_DIR));
    const onDisk = await profileDirs(stateDir);
    const saved = await readIndex(stateDir);
    const ids = saved ? saved.ids.filter((id) => onDisk.includes(id)) : [...onDisk];
    for (const id of onDisk) if (!ids.includes(id)) ids.push(id);
    const store = new ProfileStore(stateDir, { current: '', ids });
    if (ids.length === 0) ids.push(await store.makeDir());
    await store.adoptFlatFiles(ids[0] as string);
    const current = saved && ids.includes(saved.current) ? saved.current : (ids[0] as string);
    store.index = { current, ids };
    if (!saved || saved.current !== current || saved.ids.join() !== ids.join()) await store.writeIndex();
    return store;
  }

  get current(): string {
    return this.index.current;
  }

  ids(): string[] {
    return [...this.index.ids];
  }

  dirOf(id: string): string {
    if (!ID_PATTERN.test(id)) throw new EngineError('bad-request', `${JSON.stringify(id)} is no profile id`);
    return join(this.stateDir, PROFILES_DIR, id);
  }

  /** A new, empty profile (not made active). */
  async create(): Promise<string> {
    if (this.index.ids.length >= MAX_PROFILES) {
      throw new EngineError('bad-request', `there are already ${MAX_PROFILES} accounts; remove one first`);
    }
    const id = await this.makeDir();
    this.index = { ...this.index, ids: [...this.index.ids, id] };
    await this.writeIndex();
    return id;
  }

  async setCurrent(id: string): Promise<void> {
    this.require(id);
    this.index = { ...this.index, current: id };
    await this.writeIndex();
  }

  /** Deletes a profile that is not the active one, keys and all. */
  async remove(id: string): Promise<void> {
    this.require(id);
    if (id === this.index.current) throw new EngineError('internal', 'cannot remove the active profile in place');
    this.index = { ...this.index, ids: this.index.ids.filter((i) => i !== id) };
    await this.writeIndex();
    await rm(this.dirOf(id), { recursive: true, force: true });
  }

  require(id: string): void {
    if (!this.index.ids.includes(id)) throw new EngineError('bad-request', `no account with id ${JSON.stringify(id)}`);
  }

  private async makeDir(): Promise<string> {
    for (let i = 0; i < 100; i++) {
      const id = randomBytes(2).toString('hex');
      if (this.index.ids.includes(id)) continue;
      try {
        await mkdir(this.dirOf(id), { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      await ensureStateDir(this.dirOf(id));
      return id;
    }
    throw new EngineError('internal', 'could not find a free profile id');
  }

  /** Moves keys and prefs left at the top of the state dir into the profile, each only where it has none. */
  private async adoptFlatFiles(id: string): Promise<void> {
    for (const name of PROFILE_FILES) {
      const from = join(this.stateDir, name);
      const to = join(this.dirOf(id), name);
      if ((await exists(from)) && !(await exists(to))) await rename(from, to);
    }
  }

  private writeIndex(): Promise<void> {
    return writePrivateFile(join(this.stateDir, INDEX_FILE), `${JSON.stringify(this.index)}\n`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function profileDirs(stateDir: string): Promise<string[]> {
  const entries = await readdir(join(stateDir, PROFILES_DIR), { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && ID_PATTERN.test(e.name))
    .map((e) => e.name)
    .sort();
}

/** The index, or undefined when it is missing or unreadable (it is rebuilt from the directories). */
async function readIndex(stateDir: string): Promise<IndexFile | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(stateDir, INDEX_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  const r = raw as Partial<IndexFile> | null;
  if (!r || typeof r.current !== 'string' || !Array.isArray(r.ids)) return undefined;
  const ids = r.ids.filter((id): id is string => typeof id === 'string' && ID_PATTERN.test(id));
  return { current: r.current, ids: [...new Set(ids)] };
}

/** A profile's keys (made on first use) and its prefs and login. */
export async function readProfile(dir: string): Promise<{ keys: NodeKeys; persisted: PersistedState }> {
  try {
    return { keys: await loadOrCreateKeys(dir), persisted: await loadState(dir) };
  } catch (e) {
    throw new EngineError('permission-denied', `cannot read the account in ${dir}: ${(e as Error).message}`);
  }
}

const TAILSCALE_CONTROL = /^https:\/\/(controlplane|login)\.tailscale\.com$/;

/** The admin console: the one configured, else Tailscale's for Tailscale's server; Headscale has none built in. */
export function adminURLOf(controlURL: string, configured: string | undefined): string | undefined {
  if (configured) return configured;
  return TAILSCALE_CONTROL.test(controlURL) ? 'https://login.tailscale.com/admin/machines' : undefined;
}

export function profileInfo(id: string, s: PersistedState): ProfileInfo {
  const adminURL = adminURLOf(s.prefs.controlURL, s.prefs.adminURL);
  return {
    id,
    controlURL: s.prefs.controlURL,
    loginName: s.loginName ?? '',
    tailnet: s.tailnet ?? '',
    loggedIn: s.loggedIn,
    ...(adminURL ? { adminURL } : {}),
  };
}

/** The profile a user named: its id, else the one login name or tailnet that matches. */
export function findProfile(profiles: ProfileInfo[], name: string): ProfileInfo {
  const byId = profiles.find((p) => p.id === name);
  if (byId) return byId;
  const matches = profiles.filter((p) => p.loginName === name || p.tailnet === name);
  if (matches.length === 1) return matches[0] as ProfileInfo;
  if (matches.length > 1) {
    throw new EngineError('bad-request', `several accounts match ${JSON.stringify(name)}; name one by its id`);
  }
  throw new EngineError('bad-request', `no account ${JSON.stringify(name)} (trellis switch --list shows them)`);
}
