// The `trellis web` transport: the same TrellisApi as Electron's preload, carried over a WebSocket to the local
// bridge. The page is served as http://127.0.0.1:PORT/?token=TOKEN; every request carries that token.
import {
  API_CALLS,
  ApiError,
  type ApiErrorBody,
  type ApiEventName,
  type ApiEvents,
  type BridgeClientMessage,
  type BridgeServerMessage,
  type DroppedFile,
  type TrellisApi,
  type UploadProgress,
} from '../../../preload/api.ts';
import { copyInBrowser, openInBrowser } from './browser-actions.ts';

/** 'open' = calls go through; 'connecting' = first attempt; 'reconnecting' = the socket dropped, retrying. */
export type BridgeStatus = 'open' | 'connecting' | 'reconnecting';

export type BridgeApi = TrellisApi & {
  /** Follows the socket's state; the listener gets the current state at once. */
  onStatus(listener: (status: BridgeStatus) => void): () => void;
};

const CALL_TIMEOUT_MS = 60_000;
// Interactive login waits for the user to finish in the browser.
const LOGIN_TIMEOUT_MS = 10 * 60_000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

interface Pending {
  resolve(value: unknown): void;
  reject(err: ApiError): void;
  timer: ReturnType<typeof setTimeout>;
}

export function createWebClient(token: string): BridgeApi {
  const pending = new Map<number, Pending>();
  const listeners = new Map<ApiEventName, Set<(payload: never) => void>>();
  const statusListeners = new Set<(s: BridgeStatus) => void>();
  let socket: WebSocket | null = null;
  let status: BridgeStatus = 'connecting';
  let nextId = 1;
  let retryMs = RETRY_FIRST_MS;
  let retryTimer: ReturnType<typeof setTimeout> | null = null;
  let everOpened = false;

  const setStatus = (s: BridgeStatus): void => {
    status = s;
    for (const l of statusListeners) l(s);
  };

  const emit = (event: ApiEventName, payload: unknown): void => {
    for (const l of listeners.get(event) ?? []) (l as (p: unknown) => void)(payload);
  };

  const failAll = (): void => {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError('no-engine', 'Lost the connection to Trellis; reconnecting.'));
      pending.delete(id);
    }
  };

  const onMessage = (data: unknown): void => {
    if (typeof data !== 'string') return;
    let msg: BridgeServerMessage;
    try {
      msg = JSON.parse(data) as BridgeServerMessage;
    } catch {
      return;
    }
    if (msg.type === 'reply') {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      clearTimeout(p.timer);
      const outcome = msg.outcome;
      if (outcome.ok) p.resolve(outcome.result);
      else p.reject(ApiError.fromBody(outcome.error));
    } else if (msg.type === 'event') {
      emit(msg.event, msg.payload);
    }
  };

  const open = (): void => {
    retryTimer = null;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api?token=${encodeURIComponent(token)}`);
    socket = ws;
    ws.onopen = () => {
      retryMs = RETRY_FIRST_MS;
      everOpened = true;
      setStatus('open');
    };
    ws.onmessage = (ev) => onMessage(ev.data);
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      failAll();
      setStatus(everOpened ? 'reconnecting' : 'connecting');
      scheduleRetry();
    };
  };

  // Backoff doubles up to a ceiling and keeps trying: the bridge may be restarting, and the page has no other
  // way back. A network change skips the wait.
  const scheduleRetry = (): void => {
    if (retryTimer) return;
    retryTimer = setTimeout(open, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };
  window.addEventListener('online', () => {
    if (socket || !retryTimer) return;
    clearTimeout(retryTimer);
    open();
  });

  function call(name: string, arg?: unknown): Promise<unknown> {
    const ws = socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError('no-engine', 'Not connected to Trellis yet; try again in a moment.'));
    }
    const id = nextId++;
    const ms = name === 'login' ? LOGIN_TIMEOUT_MS : CALL_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new ApiError('no-engine', `Trellis did not answer within ${ms / 1000} seconds.`));
      }, ms);
      pending.set(id, { resolve, reject, timer });
      const msg: BridgeClientMessage = { type: 'call', id, name: name as BridgeClientMessage['name'], arg };
      ws.send(JSON.stringify(msg));
    });
  }

  // Dropped files live in the browser, not on the machine: stream each to the bridge, which stores it in a temp
  // file and answers with that path, then send the paths like any others. XMLHttpRequest, not fetch: only it
  // reports upload progress, and a large file takes seconds to carry.
  async function sendDroppedFiles(
    peer: string,
    files: readonly DroppedFile[],
    onUpload?: (p: UploadProgress) => void,
  ): Promise<string[]> {
    const total = files.reduce((n, f) => n + f.size, 0);
    let done = 0;
    const paths: string[] = [];
    for (const file of files) {
      if (!(file instanceof Blob)) throw new ApiError('bad-request', `${file.name} is not a file this page can read.`);
      const before = done;
      paths.push(await upload(file, file.name, (loaded) => onUpload?.({ loaded: before + loaded, total })));
      done += file.size;
    }
    onUpload?.({ loaded: total, total });
    return (await call('sendFiles', { peer, paths })) as string[];
  }

  function upload(file: Blob, name: string, progress: (loaded: number) => void): Promise<string> {
    const url = `/upload?token=${encodeURIComponent(token)}&name=${encodeURIComponent(name)}`;
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', url);
      xhr.responseType = 'text';
      xhr.upload.onprogress = (e) => progress(e.loaded);
      xhr.onerror = () => reject(new ApiError('no-engine', `Could not upload ${name}: Trellis is not reachable.`));
      xhr.onload = () => {
        let body: { path?: unknown } | ApiErrorBody | null = null;
        try {
          body = JSON.parse(xhr.responseText) as { path?: unknown } | ApiErrorBody;
        } catch {
          body = null;
        }
        if (xhr.status < 200 || xhr.status >= 300) {
          const err = body && 'code' in body ? body : null;
          reject(new ApiError(err?.code ?? 'internal', err?.message ?? `Uploading ${name} failed (${xhr.status}).`));
        } else if (!body || !('path' in body) || typeof body.path !== 'string') {
          reject(new ApiError('internal', `Uploading ${name} gave no path.`));
        } else {
          resolve(body.path);
        }
      };
      xhr.send(file);
    });
  }

  const api: Record<string, unknown> = {};
  for (const name of API_CALLS) api[name] = (arg?: unknown) => call(name, arg);
  // These act on the browser the user is looking at, which may not be the machine running Trellis.
  api.copyText = (text: string) => copyInBrowser(text);
  api.openExternal = (url: string) => openInBrowser(url);
  api.sendDroppedFiles = sendDroppedFiles;
  api.on = <E extends ApiEventName>(event: E, listener: (payload: ApiEvents[E]) => void) => {
    let set = listeners.get(event);
    if (!set) listeners.set(event, (set = new Set()));
    const l = listener as (payload: never) => void;
    set.add(l);
    return () => set.delete(l);
  };
  api.onStatus = (listener: (s: BridgeStatus) => void) => {
    statusListeners.add(listener);
    listener(status);
    return () => statusListeners.delete(listener);
  };

  open();
  return api as BridgeApi;
}
