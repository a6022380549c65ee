// The preload: exposes preload/api.ts's TrellisApi as window.trellis over Electron IPC. It runs sandboxed, so it
// is bundled to one CommonJS file (build/build-main.mjs) that needs nothing but require('electron').
import { contextBridge, type IpcRendererEvent, ipcRenderer, webUtils } from 'electron';
import {
  API_CALLS,
  type ApiCallName,
  type ApiErrorCode,
  type ApiEventMessage,
  type ApiEventName,
  type ApiEvents,
  type ApiOutcome,
  type DroppedFile,
  IPC_EVENT_CHANNEL,
  IPC_INVOKE_CHANNEL,
  type TrellisApi,
} from './api.ts';

/** A failed call as the window sees it: the sentence as message, the ApiErrorCode as code. */
function callError(code: ApiErrorCode, message: string): Error {
  return Object.assign(new Error(message), { name: 'ApiError', code });
}

async function invoke(name: ApiCallName, arg?: unknown): Promise<unknown> {
  const outcome = (await ipcRenderer.invoke(IPC_INVOKE_CHANNEL, { name, arg })) as ApiOutcome<unknown>;
  if (outcome.ok) return outcome.result;
  throw callError(outcome.error.code, outcome.error.message);
}

function subscribe<E extends ApiEventName>(event: E, listener: (payload: ApiEvents[E]) => void): () => void {
  const onMessage = (_e: IpcRendererEvent, message: ApiEventMessage) => {
    if (message?.event === event) listener(message.payload as ApiEvents[E]);
  };
  ipcRenderer.on(IPC_EVENT_CHANNEL, onMessage);
  return () => {
    ipcRenderer.removeListener(IPC_EVENT_CHANNEL, onMessage);
  };
}

/** Paths of dropped files; a file with no path on disk (dragged out of a web page, say) fails the whole drop. */
function droppedPaths(files: readonly DroppedFile[]): string[] {
  return files.map((file) => {
    // The window hands over DOM File objects; webUtils reads the path Chromium attached to each.
    const path = webUtils.getPathForFile(file as File);
    if (!path) {
      throw callError('bad-request', `"${file.name}" is not a file on this computer, so it cannot be sent.`);
    }
    return path;
  });
}

async function sendDroppedFiles(peer: string, files: readonly DroppedFile[]): Promise<string[]> {
  if (files.length === 0) return [];
  return (await invoke('sendFiles', { peer, paths: droppedPaths(files) })) as string[];
}

function buildApi(): TrellisApi {
  const calls: Record<string, (arg?: unknown) => Promise<unknown>> = {};
  for (const name of API_CALLS) calls[name] = (arg?: unknown) => invoke(name, arg);
  // Every name of ApiCalls is in API_CALLS (api.ts keeps the two together), so calls covers TrellisApi's calls.
  return { ...calls, on: subscribe, sendDroppedFiles } as TrellisApi;
}

contextBridge.exposeInMainWorld('trellis', buildApi());
