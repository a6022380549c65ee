// How the window gets its TrellisApi: Electron's preload exposes its IPC transport as window.trellis; without it
// the page runs under `trellis web` and talks to the bridge over a WebSocket, authenticated by the token in its URL.
import type { TrellisApi, TrellisIpc } from '../../../preload/api.ts';
import { createElectronClient } from './electron-client.ts';
import { type BridgeApi, type BridgeStatus, createWebClient } from './web-client.ts';

declare global {
  interface Window {
    trellis?: TrellisIpc;
  }
}

export type { BridgeStatus };

let api: TrellisApi | null = null;

export function getApi(): TrellisApi {
  if (!api) {
    api = window.trellis
      ? createElectronClient(window.trellis)
      : createWebClient(new URLSearchParams(location.search).get('token') ?? '');
  }
  return api;
}

/** The bridge client reports its socket's state; Electron's IPC has none to report. */
export function hasBridgeStatus(a: TrellisApi): a is BridgeApi {
  return 'onStatus' in a && typeof (a as Partial<BridgeApi>).onStatus === 'function';
}
