// A failed login as the user should read it: one plain sentence, the form field at fault (the server URL or the
// auth key), and the engine's raw text kept as the detail for those who need it.
import { ApiError } from '../../preload/api.ts';
import { EngineError } from '../engine/protocol.ts';

function hostOf(controlURL: string): string {
  try {
    return new URL(controlURL).host || controlURL;
  } catch {
    return controlURL;
  }
}

/** Maps what the engine (or the link to it) threw during a login to an ApiError with field and detail. */
export function loginError(e: unknown, controlURL: string): ApiError | undefined {
  if (!(e instanceof EngineError)) return undefined;
  const host = hostOf(controlURL);
  const detail = e.message;
  switch (e.code) {
    case 'control-unreachable':
    case 'timeout':
      return new ApiError('engine', `Trellis could not reach ${host} — check the address and your network.`, {
        field: 'controlURL',
        detail,
      });
    case 'control-protocol':
      return new ApiError('engine', `${host} did not answer like a Tailscale or Headscale server.`, {
        field: 'controlURL',
        detail,
      });
    case 'auth-key-invalid':
      return new ApiError('engine', 'The server did not accept this auth key; check it or create a new one.', {
        field: 'authKey',
        detail,
      });
    case 'bad-request':
      if (/auth key/i.test(e.message)) return new ApiError('bad-request', 'Enter the auth key.', { field: 'authKey' });
      if (/control server URL/i.test(e.message))
        return new ApiError('bad-request', 'The server URL must start with https:// or http://.', {
          field: 'controlURL',
          detail,
        });
      return undefined;
    case 'login-failed':
      return new ApiError('engine', `${host} refused the login.`, { detail });
    default:
      return undefined;
  }
}
