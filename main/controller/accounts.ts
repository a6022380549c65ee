// The window's and the tray's account calls, carried to the engine's profile commands, and the accounts as the
// window shows them. What the window sends is checked here: it is a sandboxed page, never trusted.
import { type AccountView, ApiError, type LoginRequest, TAILSCALE_CONTROL_URL } from '../../preload/api.ts';
import type { EngineClient } from '../engine/ipc/rpc.ts';
import type { Prefs, ProfileList } from '../engine/protocol.ts';
import { loginError } from './login-errors.ts';
import { isWebUrl } from './views.ts';

const LOGIN_TIMEOUT_MS = 90_000;
const SWITCH_TIMEOUT_MS = 30_000;

export function accountViews(list: ProfileList | undefined): AccountView[] | undefined {
  if (!list) return undefined;
  return list.profiles.map((p) => ({
    id: p.id,
    controlURL: p.controlURL,
    loginName: p.loginName,
    tailnet: p.tailnet,
    loggedIn: p.loggedIn,
    active: p.id === list.current,
    ...(p.adminURL ? { adminURL: p.adminURL } : {}),
  }));
}

function accountId(arg: unknown, what: string): string {
  if (typeof arg !== 'string' || !/^[0-9a-f]{4}$/.test(arg))
    throw new ApiError('bad-request', `${what} needs an account id`);
  return arg;
}

/** Logs the account in use in: on the server asked for, else the one it has, else Tailscale's. */
export async function logIn(client: EngineClient, req: LoginRequest, prefs: Prefs | undefined): Promise<void> {
  const controlURL = req.controlURL?.trim() || prefs?.controlURL || TAILSCALE_CONTROL_URL;
  if (!isWebUrl(controlURL)) throw new ApiError('bad-request', 'the control server URL must start with http(s)://');
  const authKey = req.authKey?.trim() || undefined;
  await client.request('setPrefs', { controlURL, wantRunning: true });
  await loginTo(client, controlURL, authKey);
}

/** The login itself; a refusal or an unreachable server becomes one sentence for the field at fault. */
async function loginTo(client: EngineClient, controlURL: string, authKey: string | undefined): Promise<void> {
  try {
    await client.request('login', authKey ? { authKey } : {}, { timeoutMs: LOGIN_TIMEOUT_MS });
  } catch (e) {
    throw loginError(e, controlURL) ?? e;
  }
}

/** Whether a login or add-account request carries an auth key (else the login page is to be opened). */
export function hasAuthKey(arg: unknown): boolean {
  const key = typeof arg === 'object' && arg !== null ? (arg as { authKey?: unknown }).authKey : undefined;
  return typeof key === 'string' && key.trim() !== '';
}

/** A new account on the server asked for (Tailscale's by default), made the one in use, then logged in. */
export async function addAccount(client: EngineClient, arg: unknown): Promise<void> {
  const req = (typeof arg === 'object' && arg !== null ? arg : {}) as Record<string, unknown>;
  if (req.controlURL !== undefined && typeof req.controlURL !== 'string') {
    throw new ApiError('bad-request', 'the control server URL must be text');
  }
  if (req.authKey !== undefined && typeof req.authKey !== 'string') {
    throw new ApiError('bad-request', 'the auth key must be text');
  }
  const controlURL = (req.controlURL as string | undefined)?.trim() || TAILSCALE_CONTROL_URL;
  if (!isWebUrl(controlURL)) throw new ApiError('bad-request', 'the control server URL must start with http(s)://');
  const authKey = (req.authKey as string | undefined)?.trim() || undefined;
  await client.request('addProfile', { controlURL }, { timeoutMs: SWITCH_TIMEOUT_MS });
  await client.request('setPrefs', { wantRunning: true });
  await loginTo(client, controlURL, authKey);
}

export async function switchAccount(client: EngineClient, arg: unknown): Promise<void> {
  const profile = accountId(arg, 'switchAccount');
  await client.request('switchProfile', { profile }, { timeoutMs: SWITCH_TIMEOUT_MS });
}

export async function removeAccount(client: EngineClient, arg: unknown): Promise<void> {
  const profile = accountId(arg, 'removeAccount');
  await client.request('removeProfile', { profile }, { timeoutMs: SWITCH_TIMEOUT_MS });
}
