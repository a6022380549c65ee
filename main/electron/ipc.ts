// The Electron transport of preload/api.ts on the main side: one invoke handler for every call (sender checked,
// name validated, errors returned as values) and the controller's events pushed to the window.
import { type BrowserWindow, type IpcMainInvokeEvent, ipcMain } from 'electron';
import {
  type ApiBackend,
  type ApiCallName,
  ApiError,
  type ApiEventMessage,
  type ApiOutcome,
  IPC_EVENT_CHANNEL,
  IPC_INVOKE_CHANNEL,
  isApiCallName,
} from '../../preload/api.ts';
import { isTrustedSender } from './sender-check.ts';

export interface IpcBridgeOptions {
  backend: ApiBackend;
  /** The file URL the window loads; only its top frame may call. */
  rendererUrl: string;
  /** The window events go to; undefined while none exists. */
  window: () => BrowserWindow | undefined;
}

function failure(code: 'refused' | 'bad-request' | 'internal', message: string): ApiOutcome<never> {
  return { ok: false, error: { code, message } };
}

/** Turns whatever a call threw into an outcome: an ApiError keeps its code, anything else is 'internal'. */
export function outcomeOfError(e: unknown): ApiOutcome<never> {
  if (e instanceof ApiError) return { ok: false, error: e.toBody() };
  return failure('internal', e instanceof Error ? e.message : String(e));
}

async function handleInvoke(opts: IpcBridgeOptions, event: IpcMainInvokeEvent, request: unknown) {
  const frame = event.senderFrame;
  const sender = frame ? { url: frame.url, isMainFrame: frame.parent === null } : null;
  if (!isTrustedSender(sender, opts.rendererUrl)) {
    return failure('refused', 'This page may not control Trellis.');
  }
  if (typeof request !== 'object' || request === null) return failure('bad-request', 'The request is malformed.');
  const { name, arg } = request as { name?: unknown; arg?: unknown };
  if (!isApiCallName(name)) return failure('bad-request', `There is no call named ${JSON.stringify(name)}.`);
  try {
    // The argument's shape is the controller's to check: it validates every call's input itself.
    const result = await opts.backend.call(name as ApiCallName, arg as never);
    return { ok: true, result } satisfies ApiOutcome<unknown>;
  } catch (e) {
    return outcomeOfError(e);
  }
}

/** Registers the handler and the event forwarding; the returned function undoes both. */
export function registerIpc(opts: IpcBridgeOptions): () => void {
  ipcMain.handle(IPC_INVOKE_CHANNEL, (event, request: unknown) => handleInvoke(opts, event, request));
  const offEvents = opts.backend.onEvent((message: ApiEventMessage) => {
    const win = opts.window();
    if (!win || win.isDestroyed() || win.webContents.isDestroyed()) return;
    win.webContents.send(IPC_EVENT_CHANNEL, message);
  });
  return () => {
    offEvents();
    ipcMain.removeHandler(IPC_INVOKE_CHANNEL);
  };
}
