// The window's state: the last snapshot main pushed (engine state lives only there, replaced whole on every
// push), the toasts, the bridge's socket state, and what is purely the UI's (view, search, selection).
import { create } from 'zustand';
import type { AppSnapshot, Notice, Transfer } from '../../preload/api.ts';
import type { BridgeStatus } from './api/index.ts';
import { isLoggedIn } from './lib/format.ts';
import type { PeerFilters } from './lib/peer-filter.ts';

export type View = 'peers' | 'files' | 'settings';

export interface Toast extends Notice {
  id: number;
}

/** Files dropped in the browser on their way to the machine, before the send (and its transfer row) begins. */
export interface Upload {
  id: number;
  peer: string;
  /** The file's name, or "3 files". */
  name: string;
  loaded: number;
  total: number;
}

export interface AppState {
  snapshot: AppSnapshot | null;
  /** 'open' under Electron (IPC never drops). */
  bridge: BridgeStatus;
  notices: Toast[];
  view: View;
  search: string;
  /** Peer id; details are read from the current snapshot, so they never go stale. */
  selectedPeer: number | null;
  filters: PeerFilters;
  uploads: Upload[];
  /** Files received or sent since the user last looked at the Files tab. */
  unseenFiles: number;
  setSnapshot(s: AppSnapshot): void;
  setBridge(b: BridgeStatus): void;
  notify(n: Notice): void;
  dismiss(id: number): void;
  setView(v: View): void;
  setSearch(q: string): void;
  selectPeer(id: number | null): void;
  setFilters(f: Partial<PeerFilters>): void;
  /** Starts an upload row; the returned functions update it and remove it. */
  startUpload(peer: string, name: string, total: number): { progress(loaded: number): void; end(): void };
  addUnseen(n: number): void;
  /** This window asked for an interactive login: open its URL in the browser when it comes. */
  awaitingLoginURL: boolean;
  expectLoginURL(): void;
  loginURLOpened(): void;
}

const NOTICE_MS = 4000;
const MAX_NOTICES = 3;
let nextNoticeId = 1;
let nextUploadId = 1;

/** Sends that finished since the last snapshot, for a "Sent" toast. */
function newlyDone(before: readonly Transfer[], after: readonly Transfer[]): Transfer[] {
  const was = new Map(before.map((t) => [t.id, t.state]));
  return after.filter((t) => t.state === 'done' && was.has(t.id) && was.get(t.id) !== 'done');
}

export const useStore = create<AppState>()((set, get) => ({
  snapshot: null,
  bridge: 'open',
  notices: [],
  view: 'peers',
  search: '',
  selectedPeer: null,
  filters: { online: false, canReceive: false },
  uploads: [],
  unseenFiles: 0,
  awaitingLoginURL: false,
  expectLoginURL: () => set({ awaitingLoginURL: true }),
  loginURLOpened: () => set({ awaitingLoginURL: false }),
  setSnapshot: (snapshot) => {
    const prev = get().snapshot;
    const sent = prev ? newlyDone(prev.transfers, snapshot.transfers) : [];
    for (const t of sent) get().notify({ level: 'info', message: `Sent ${t.name} to ${t.peer}` });
    if (sent.length > 0) get().addUnseen(sent.length);
    // Logged out: the next login starts on the device list, not wherever the user last was.
    set(isLoggedIn(snapshot.state) ? { snapshot } : { snapshot, view: 'peers', selectedPeer: null });
  },
  setBridge: (bridge) => set({ bridge }),
  notify: (n) => {
    // The same sentence twice in a row is one toast.
    if (get().notices.some((t) => t.message === n.message && t.level === n.level)) return;
    const id = nextNoticeId++;
    // Errors stay a little longer: they usually ask the user to do something.
    setTimeout(() => get().dismiss(id), n.level === 'error' ? NOTICE_MS * 1.5 : NOTICE_MS);
    set((s) => ({ notices: [...s.notices, { ...n, id }].slice(-MAX_NOTICES) }));
  },
  dismiss: (id) => set((s) => ({ notices: s.notices.filter((t) => t.id !== id) })),
  setView: (view) => set(view === 'files' ? { view, unseenFiles: 0 } : { view }),
  setSearch: (search) => set({ search }),
  selectPeer: (selectedPeer) => set({ selectedPeer }),
  setFilters: (f) => set((s) => ({ filters: { ...s.filters, ...f } })),
  startUpload: (peer, name, total) => {
    const id = nextUploadId++;
    set((s) => ({ uploads: [...s.uploads, { id, peer, name, loaded: 0, total }] }));
    return {
      progress: (loaded) => set((s) => ({ uploads: s.uploads.map((u) => (u.id === id ? { ...u, loaded } : u)) })),
      end: () => set((s) => ({ uploads: s.uploads.filter((u) => u.id !== id) })),
    };
  },
  // Looking at the Files tab sees them all.
  addUnseen: (n) => set((s) => (s.view === 'files' ? {} : { unseenFiles: s.unseenFiles + n })),
}));

/** Shows any failure as a toast; resolves with undefined when the call failed. */
export async function attempt<T>(run: () => Promise<T>, done?: string): Promise<T | undefined> {
  try {
    const result = await run();
    if (done) useStore.getState().notify({ level: 'info', message: done });
    return result;
  } catch (err) {
    useStore.getState().notify({ level: 'error', message: errorMessage(err) });
    return undefined;
  }
}

export function errorMessage(err: unknown): string {
  return sentence(err instanceof Error ? err.message : String(err));
}

/** Some errors come from deep down in lower case and without a full stop; shown to a user, they are a sentence. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capital = t[0].toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}
