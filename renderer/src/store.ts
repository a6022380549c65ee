// The window's state: the last snapshot main pushed (engine state lives only there, replaced whole on every
// push), the toasts, the bridge's socket state, and what is purely the UI's (view, search, selection).
import { create } from 'zustand';
import type { AppSnapshot, Notice } from '../../preload/api.ts';
import type { BridgeStatus } from './api/index.ts';

export type View = 'peers' | 'files' | 'settings';

export interface Toast extends Notice {
  id: number;
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
  setSnapshot(s: AppSnapshot): void;
  setBridge(b: BridgeStatus): void;
  notify(n: Notice): void;
  dismiss(id: number): void;
  setView(v: View): void;
  setSearch(q: string): void;
  selectPeer(id: number | null): void;
}

const NOTICE_MS = 6000;
const MAX_NOTICES = 4;
let nextNoticeId = 1;

export const useStore = create<AppState>()((set, get) => ({
  snapshot: null,
  bridge: 'open',
  notices: [],
  view: 'peers',
  search: '',
  selectedPeer: null,
  setSnapshot: (snapshot) => set({ snapshot }),
  setBridge: (bridge) => set({ bridge }),
  notify: (n) => {
    const id = nextNoticeId++;
    // Errors stay a little longer: they usually ask the user to do something.
    setTimeout(() => get().dismiss(id), n.level === 'error' ? NOTICE_MS * 1.5 : NOTICE_MS);
    set((s) => ({ notices: [...s.notices, { ...n, id }].slice(-MAX_NOTICES) }));
  },
  dismiss: (id) => set((s) => ({ notices: s.notices.filter((t) => t.id !== id) })),
  setView: (view) => set({ view }),
  setSearch: (search) => set({ search }),
  selectPeer: (selectedPeer) => set({ selectedPeer }),
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
  return err instanceof Error ? err.message : String(err);
}
