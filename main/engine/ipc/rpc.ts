// Both ends of the engine's message protocol (protocol.ts) over a transport (rpc-transport.ts): serveEngine
// answers requests from one peer and forwards engine events to it; EngineClient sends requests and receives
// replies and events. A request may carry the caller's byte source (rpc-source.ts) and may be cancelled by it
// ({type:'cancel', id}); the serving side aborts a request's signal when the caller cancels or goes away.

import { FdSource } from '../fdpass/fd-source.ts';
import { closeQuietly } from '../fdpass/handover.ts';
import {
  type ByteSource,
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  type EngineErrorBody,
  type EngineEvent,
  type ErrorCode,
  isCommandName,
  type Reply,
} from '../protocol.ts';
import { answerRead, RemoteSource } from './rpc-source.ts';
import { DEFAULT_TIMEOUT_MS, guarded, type MessageTransport, RpcError } from './rpc-transport.ts';

export {
  DEFAULT_TIMEOUT_MS,
  MAX_LINE_BYTES,
  type MessageTransport,
  type PortEndpoint,
  PortTransport,
  RpcError,
  SocketTransport,
} from './rpc-transport.ts';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Why a message is not a valid Request, or undefined when it is one. */
function requestProblem(m: Record<string, unknown>): string | undefined {
  if (m.type === 'invalid') return 'the message is not valid JSON';
  if (m.type !== 'request') return 'the message is not a request';
  if (!isCommandName(m.cmd)) return `unknown command ${JSON.stringify(m.cmd)}`;
  if (!isRecord(m.args)) return 'args must be an object';
  if (Object.hasOwn(m.args, '__proto__')) return 'args must not have a __proto__ key';
  if (m.source !== undefined && (!Number.isSafeInteger(m.source) || (m.source as number) < 0)) {
    return 'source must be the byte size of the file offered';
  }
  return undefined;
}

export interface ServeOptions {
  /** Told about unexpected failures (their details never go to the peer). */
  log?: (level: 'warn' | 'error', message: string) => void;
  /** Only for a peer in this process (the daemon's main thread, over a worker port): a request's
   *  `sourceFd` is a descriptor it hands over, read in place of its streamed source and closed when the request
   *  ends. Never for a socket peer: a number from outside names nothing of ours, and closing it would close ours. */
  acceptFds?: boolean;
}

/** Answers the requests arriving on transport with api and forwards api's events; stops when the transport closes.
 *  Returns a function that stops serving (it does not close the transport). */
export function serveEngine(api: EngineApi, transport: MessageTransport, opts: ServeOptions = {}): () => void {
  let stopped = false;
  const send = (message: Reply | EngineEvent): void => {
    if (stopped || transport.closed) return;
    try {
      transport.send(message);
    } catch (e) {
      if (message.type !== 'reply' || !message.ok || !(e instanceof RpcError) || e.kind === 'closed') return;
      send({ type: 'reply', id: message.id, ok: false, error: { code: 'internal', message: e.message } });
    }
  };
  const fail = (id: number, error: EngineErrorBody) => send({ type: 'reply', id, ok: false, error });

  /** Requests being handled, by id: their abort controllers and byte sources. */
  const active = new Map<number, { ac: AbortController; source?: RemoteSource }>();

  const onRequest = async (m: Record<string, unknown>): Promise<void> => {
    // A descriptor handed over is ours from here: closed on every path below.
    const handed = opts.acceptFds && Number.isSafeInteger(m.sourceFd) ? (m.sourceFd as number) : undefined;
    if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id)) {
      if (handed !== undefined) closeQuietly(handed);
      return;
    }
    const id = m.id;
    const problem = active.has(id) ? 'a request with this id is still running' : requestProblem(m);
    if (problem !== undefined || typeof m.source !== 'number') {
      if (handed !== undefined) closeQuietly(handed);
      if (problem !== undefined) return fail(id, { code: 'bad-request', message: problem });
    }
    const cmd = m.cmd as CommandName;
    const ac = new AbortController();
    const remote =
      typeof m.source === 'number'
        ? new RemoteSource(m.source, id, (r) => {
            if (stopped) throw new RpcError('closed', 'the connection is closed');
            transport.send(r);
          })
        : undefined;
    const local = handed !== undefined && remote ? new FdSource(handed, remote.size) : undefined;
    const source = local ?? remote;
    active.set(id, { ac, source: remote });
    try {
      const result = await api.handle(cmd, m.args as CommandMap[CommandName]['args'], { signal: ac.signal, source });
      send({ type: 'reply', id, ok: true, result });
    } catch (e) {
      if (e instanceof EngineError) return fail(id, e.toBody());
      if (e instanceof RpcError) return fail(id, { code: 'internal', message: e.message });
      opts.log?.('error', `"${cmd}" failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      fail(id, { code: 'internal', message: `internal error while handling "${cmd}"` });
    } finally {
      active.delete(id);
      remote?.close(new RpcError('closed', 'the request has ended'));
      void local?.close();
    }
  };

  const onMessage = (m: unknown): void => {
    if (!isRecord(m)) return;
    const a = typeof m.id === 'number' ? active.get(m.id) : undefined;
    if (m.type === 'cancel') {
      a?.ac.abort(new EngineError('transfer-failed', 'cancelled'));
      a?.source?.close(new RpcError('cancelled', 'the sender cancelled'));
    } else if (m.type === 'data') a?.source?.answer(m);
    else void onRequest(m);
  };

  const offEvents = api.onEvent((e) => send(e));
  const offMessages = transport.onMessage(onMessage);
  const offClose = transport.onClose(() => stop());
  function stop(): void {
    if (stopped) return;
    stopped = true;
    offEvents();
    offMessages();
    offClose();
    for (const a of active.values()) {
      a.ac.abort(new EngineError('transfer-failed', 'the caller went away'));
      a.source?.close();
    }
  }
  return stop;
}

export interface RequestOptions {
  /** Milliseconds to wait for the reply; 0 = wait as long as the transport is open. Default 30 s. */
  timeoutMs?: number;
  /** Bytes the engine may read for this request (fileSend's file, opened by the caller). */
  source?: ByteSource;
  /** Aborting cancels the request: the engine is told, and the promise rejects at once. */
  signal?: AbortSignal;
  /** A descriptor of source's file, given up to a peer in this process (serveEngine acceptFds); closed
   *  here if the request cannot be sent. Meaningless over a socket. */
  sourceFd?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
  source?: ByteSource;
}

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'bad-request',
  'not-started',
  'no-control-url',
  'control-unreachable',
  'control-protocol',
  'login-failed',
  'auth-key-invalid',
  'permission-denied',
  'no-such-peer',
  'no-data-path',
  'timeout',
  'transfer-failed',
  'internal',
]);

/** The requesting side. Requests reject with EngineError (the engine refused) or RpcError (timeout, closed).
 *  When the transport fails, pending requests reject and listeners get a 'log' event at level 'error'. */
export class EngineClient {
  readonly #transport: MessageTransport;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(e: EngineEvent) => void>();
  #nextId = 1;

  constructor(transport: MessageTransport) {
    this.#transport = transport;
    transport.onMessage((m) => this.#onMessage(m));
    transport.onClose((error) => {
      const why = error
        ? `the connection to the engine failed: ${error.message}`
        : 'the connection to the engine closed';
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer);
        p.reject(new RpcError('closed', why));
      }
      this.#pending.clear();
      if (error) this.#emit({ type: 'event', event: 'log', level: 'error', message: why });
    });
  }

  get closed(): boolean {
    return this.#transport.closed;
  }

  request<C extends CommandName>(
    cmd: C,
    args: CommandMap[C]['args'],
    opts: RequestOptions = {},
  ): Promise<CommandMap[C]['result']> {
    return new Promise<CommandMap[C]['result']>((resolve, reject) => {
      const { signal, source } = opts;
      const { sourceFd } = opts;
      if (signal?.aborted || (sourceFd !== undefined && !source)) {
        if (sourceFd !== undefined) closeQuietly(sourceFd);
        if (!signal?.aborted) return reject(new RpcError('unsendable', 'a descriptor goes only with a source'));
        return reject(new RpcError('cancelled', `"${cmd}" was cancelled`));
      }
      const id = this.#nextId++;
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        clearTimeout(pending.timer);
        try {
          this.#transport.send({ type: 'cancel', id });
        } catch {}
        reject(new RpcError('cancelled', `"${cmd}" was cancelled`));
      };
      const settle = () => signal?.removeEventListener('abort', onAbort);
      const pending: Pending = {
        resolve: (v) => {
          settle();
          resolve(v as CommandMap[C]['result']);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
        source,
      };
      const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        pending.timer = setTimeout(() => {
          this.#pending.delete(id);
          pending.reject(new RpcError('timeout', `the engine did not answer "${cmd}" within ${seconds(timeoutMs)}`));
        }, timeoutMs);
      }
      this.#pending.set(id, pending);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const fd = source && sourceFd !== undefined ? { sourceFd } : {};
        this.#transport.send({ type: 'request', id, cmd, args, ...(source ? { source: source.size } : {}), ...fd });
      } catch (e) {
        if (sourceFd !== undefined) closeQuietly(sourceFd);
        clearTimeout(pending.timer);
        this.#pending.delete(id);
        pending.reject(e as Error);
      }
    });
  }

  /** Subscribes to engine events; returns the unsubscribe function. */
  on(listener: (e: EngineEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onClose(listener: (error?: Error) => void): () => void {
    return this.#transport.onClose(listener);
  }

  close(): void {
    this.#transport.close();
  }

  #emit(e: EngineEvent): void {
    for (const l of [...this.#listeners]) guarded(() => l(e));
  }

  #onMessage(m: unknown): void {
    if (!isRecord(m)) return;
    if (m.type === 'event' && typeof m.event === 'string') {
      this.#emit(m as unknown as EngineEvent);
      return;
    }
    if (typeof m.id !== 'number') return;
    const p = this.#pending.get(m.id);
    if (!p) return;
    if (m.type === 'read') {
      if (p.source) answerRead(p.source, m, (d, transfer) => this.#transport.send(d, transfer));
      return;
    }
    if (m.type !== 'reply') return;
    this.#pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok === true) {
      p.resolve(m.result);
      return;
    }
    const body = isRecord(m.error) ? m.error : {};
    const code = typeof body.code === 'string' && ERROR_CODES.has(body.code) ? (body.code as ErrorCode) : 'internal';
    p.reject(new EngineError(code, typeof body.message === 'string' ? body.message : 'the engine refused the request'));
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
