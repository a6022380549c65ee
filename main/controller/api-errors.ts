// What the window is told when a call fails: a typed ApiError with a sentence, whatever went wrong underneath.
import { ApiError } from '../../preload/api.ts';
import { EngineError } from '../engine/protocol.ts';

export /** Engine refusals keep their sentence; the rest becomes a typed API error. */
function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof EngineError) {
    const code = e.code === 'no-data-path' ? 'not-connected' : e.code === 'bad-request' ? 'bad-request' : 'engine';
    return new ApiError(code, e.message);
  }
  const err = e as Error & { code?: unknown };
  if (err?.name === 'RpcError') return new ApiError('no-engine', err.message);
  return new ApiError('internal', err?.message ?? String(e));
}
