// Registration with the control server: logging in with a pre-auth key or interactively (an AuthURL an
// admin approves), logging out, and the node-key rotation rules of the Go client (docs/protocol/control.md §5.3).

import { keyToText, publicText } from '../crypto/key-text.ts';
import { EngineError } from '../protocol.ts';
import { generatePrivateKey } from '../wg/crypto.ts';
import { CAPABILITY_VERSION, ControlError } from './dial.ts';
import { type NodeKeys, saveKeys } from './keys.ts';
import { ControlSession, HttpStatusError } from './session.ts';
import { type Hostinfo, LOGOUT_TIME, type RegisterRequest, ZERO_TIME } from './tailcfg.ts';

const ZERO_NODE_KEY = keyToText('nodekey', new Uint8Array(32));
const INTERACTIVE_LOGIN_TIMEOUT_MS = 15 * 60_000;
const REGISTER_TIMEOUT_MS = 30_000;

export type ApprovalResult =
  | { kind: 'authorized'; loginName?: string }
  | { kind: 'failed'; reason: string; authURL?: string }
  | { kind: 'cancelled' };

export type LoginOutcome =
  | { kind: 'authorized'; loginName?: string }
  | { kind: 'needsMachineAuth' }
  | { kind: 'interactive'; authURL: string; approval: Promise<ApprovalResult> };

/** Maps control failures to the protocol's typed errors. */
export function toEngineError(e: unknown, what: string): EngineError {
  if (e instanceof EngineError) return e;
  if (e instanceof ControlError) {
    const code = e.kind === 'unreachable' || e.kind === 'timeout' ? 'control-unreachable' : 'control-protocol';
    return new EngineError(code, `${what}: ${e.message}`);
  }
  return new EngineError('internal', `${what}: ${(e as Error)?.message ?? String(e)}`);
}

export interface RegistrarOptions {
  stateDir: string;
  keys: NodeKeys;
  hostinfo: () => Hostinfo;
  timeoutMs?: number;
}

export class Registrar {
  private pending: AbortController | undefined;

  constructor(private readonly o: RegistrarOptions) {}

  private request(extra: Partial<RegisterRequest>): RegisterRequest {
    const k = this.o.keys;
    return {
      Version: CAPABILITY_VERSION,
      NodeKey: publicText('nodekey', k.nodePrivate),
      OldNodeKey: k.oldNodePrivate ? publicText('nodekey', k.oldNodePrivate) : ZERO_NODE_KEY,
      Expiry: ZERO_TIME,
      Followup: '',
      Hostinfo: this.o.hostinfo(),
      ...extra,
    };
  }

  /** A new node key, keeping the old one to present as OldNodeKey (after expiry). */
  async rotateNodeKey(): Promise<void> {
    this.o.keys.oldNodePrivate = this.o.keys.nodePrivate;
    this.o.keys.nodePrivate = generatePrivateKey();
    await saveKeys(this.o.stateDir, this.o.keys);
  }

  /** A new node key with no history (after logout: the old one is dead). */
  async freshNodeKey(): Promise<void> {
    this.o.keys.nodePrivate = generatePrivateKey();
    this.o.keys.oldNodePrivate = undefined;
    await saveKeys(this.o.stateDir, this.o.keys);
  }

  /** The login went through: the old key's history is no longer needed. */
  async settled(): Promise<void> {
    this.o.keys.oldNodePrivate = undefined;
    await saveKeys(this.o.stateDir, this.o.keys);
  }

  cancel(): void {
    this.pending?.abort();
    this.pending = undefined;
  }

  /** Registers this node. Throws EngineError when the server refuses or cannot be reached. */
  async login(controlURL: string, authKey: string | undefined): Promise<LoginOutcome> {
    this.cancel();
    let session: ControlSession;
    try {
      session = await ControlSession.open(controlURL, this.o.keys.machinePrivate, this.o.timeoutMs);
    } catch (e) {
      throw toEngineError(e, 'login failed');
    }
    let keepSession = false;
    try {
      const auth = authKey ? { Auth: { AuthKey: authKey } } : {};
      let resp = await session.register(this.request(auth), REGISTER_TIMEOUT_MS);
      if (resp.NodeKeyExpired && !resp.Error && !resp.AuthURL) {
        await this.rotateNodeKey(); // our key is dead on the server: present a fresh one
        resp = await session.register(this.request(auth), REGISTER_TIMEOUT_MS);
      }
      if (resp.Error) {
        throw new EngineError(
          authKey ? 'auth-key-invalid' : 'login-failed',
          `control server refused the login: ${resp.Error}`,
        );
      }
      if (resp.AuthURL) {
        if (!/^https?:\/\//.test(resp.AuthURL))
          throw new EngineError('control-protocol', 'control sent a non-http login URL');
        keepSession = true;
        return { kind: 'interactive', authURL: resp.AuthURL, approval: this.awaitApproval(session, resp.AuthURL) };
      }
      if (!resp.MachineAuthorized) return { kind: 'needsMachineAuth' };
      return { kind: 'authorized', loginName: resp.Login?.LoginName };
    } catch (e) {
      // Headscale answers a bad pre-auth key with an HTTP error (401, or 500 with "failed to parse auth-key").
      if (authKey && e instanceof HttpStatusError && (e.status < 500 || /auth.?key|pre.?auth/i.test(e.body))) {
        throw new EngineError('auth-key-invalid', `control server refused the auth key: ${e.message}`);
      }
      throw toEngineError(e, 'login failed');
    } finally {
      if (!keepSession) session.close();
    }
  }

  /** The long-poll that returns once an admin approves the AuthURL (or it expires). */
  private async awaitApproval(session: ControlSession, authURL: string): Promise<ApprovalResult> {
    const abort = new AbortController();
    this.pending = abort;
    try {
      const resp = await session.register(
        this.request({ Followup: authURL }),
        INTERACTIVE_LOGIN_TIMEOUT_MS,
        abort.signal,
      );
      if (abort.signal.aborted) return { kind: 'cancelled' };
      if (resp.Error || !resp.MachineAuthorized || resp.AuthURL) {
        return {
          kind: 'failed',
          reason: resp.Error || 'the login was not approved in time; log in again',
          authURL: resp.AuthURL,
        };
      }
      return { kind: 'authorized', loginName: resp.Login?.LoginName };
    } catch (e) {
      return abort.signal.aborted
        ? { kind: 'cancelled' }
        : { kind: 'failed', reason: `login failed: ${(e as Error).message}` };
    } finally {
      session.close();
      if (this.pending === abort) this.pending = undefined;
    }
  }

  /** Tells the server this node logs out (Expiry in the past). Throws ControlError when unreachable. */
  async logout(controlURL: string): Promise<void> {
    const s = await ControlSession.open(controlURL, this.o.keys.machinePrivate, this.o.timeoutMs ?? 10_000);
    try {
      await s.register(this.request({ Expiry: LOGOUT_TIME }), 10_000);
    } finally {
      s.close();
    }
  }
}
