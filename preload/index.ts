// The preload: exposes the IPC transport of preload/api.ts (TrellisIpc) as window.trellis; the window builds its
// TrellisApi on it (renderer/src/api/electron-client.ts). It runs sandboxed, so it is bundled to one CommonJS
// file (build/build-main.mjs) that needs nothing but require('electron').
import { contextBridge, type IpcRendererEvent, ipcRenderer, webUtils } from 'electron';
import {
  type ApiCallName,
  type ApiEventMessage,
  type ApiOutcome,
  type DroppedFile,
  IPC_EVENT_CHANNEL,
  IPC_INVOKE_CHANNEL,
  isApiCallName,
  type TrellisIpc,
} from './api.ts';

const ipc: TrellisIpc = {
  async call(name: ApiCallName, arg?: unknown): Promise<ApiOutcome<unknown>> {
    if (!isApiCallName(name)) return { ok: false, error: { code: 'bad-request', message: `no call named ${name}` } };
    return (await ipcRenderer.invoke(IPC_INVOKE_CHANNEL, { name, arg })) as ApiOutcome<unknown>;
  },
  onEvent(listener: (message: ApiEventMessage) => void): () => void {
    const onMessage = (_e: IpcRendererEvent, message: ApiEventMessage) => listener(message);
    ipcRenderer.on(IPC_EVENT_CHANNEL, onMessage);
    return () => {
      ipcRenderer.removeListener(IPC_EVENT_CHANNEL, onMessage);
    };
  },
  // The window hands over DOM File objects; webUtils reads the path Chromium attached to each.
  pathsOf: (files: readonly DroppedFile[]) => files.map((file) => webUtils.getPathForFile(file as File) || ''),
};

contextBridge.exposeInMainWorld('trellis', ipc);
