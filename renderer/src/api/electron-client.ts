// The Electron transport on the window's side: the preload's TrellisIpc (outcomes as values) made into the
// TrellisApi the views use, failures as ApiError with their code.
import {
  API_CALLS,
  type ApiCallName,
  ApiError,
  type ApiEventName,
  type ApiEvents,
  type DroppedFile,
  type TrellisApi,
  type TrellisIpc,
} from '../../../preload/api.ts';

export function createElectronClient(ipc: TrellisIpc): TrellisApi {
  const call = async (name: ApiCallName, arg?: unknown): Promise<unknown> => {
    const outcome = await ipc.call(name, arg);
    if (outcome.ok) return outcome.result;
    throw ApiError.fromBody(outcome.error);
  };
  const on = <E extends ApiEventName>(event: E, listener: (payload: ApiEvents[E]) => void): (() => void) =>
    ipc.onEvent((m) => {
      if (m.event === event) listener(m.payload as ApiEvents[E]);
    });
  const sendDroppedFiles = async (peer: string, files: readonly DroppedFile[]): Promise<string[]> => {
    if (files.length === 0) return [];
    const paths = ipc.pathsOf(files);
    const missing = files.find((_, i) => !paths[i]);
    if (missing)
      throw new ApiError('bad-request', `"${missing.name}" is not a file on this computer, so it cannot be sent.`);
    return (await call('sendFiles', { peer, paths })) as string[];
  };
  const calls: Record<string, (arg?: unknown) => Promise<unknown>> = {};
  for (const name of API_CALLS) calls[name] = (arg?: unknown) => call(name, arg);
  // Every name of ApiCalls is in API_CALLS (api.ts keeps the two together), so calls covers TrellisApi's calls.
  return { ...calls, on, sendDroppedFiles } as TrellisApi;
}
