// Transports for the engine's message protocol (protocol.ts): serveEngine answers requests from one peer and
// forwards engine events to it; EngineClient sends requests and receives replies and events. Two carriers:
// a worker MessagePort (structured clone) and a stream socket (one JSON value per line, lines ≤ 1 MiB).
import type { Socket } from 'node:net';
import {
  type CommandMap,
  type CommandName,
  type EngineApi,
  EngineError,
  type EngineErrorBody,
  type EngineEvent,
  type ErrorCode,
  isCommandName,
  type Reply,
} from './protocol.ts';

export const MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
/** A socket peer that stops reading is cut off once this much output is queued for it. */
const MAX_QUEUED_BYTES = 16 * MAX_LINE_BYTES;

/** A failure of the carrier, not of the engine: the peer went away, did not answer, or a message cannot travel. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly kind: 'timeout' | 'closed' | 'too-large' | 'unsendable',
    message: string,
  ) {
    super(message);
  }
}

/** A two-way channel of protocol messages. Listeners must not throw (a throw becomes a process warning). */
export interface MessageTransport {
  /** Throws RpcError when the transport is closed or the message cannot be carried. */
  send(message: object): void;
  onMessage(listener: (message: unknown) => void): () => void;
  /** Called once when the channel closes, with the reason if it failed; at once if already closed. */
  onClose(listener: (error?: Error) => void): () => void;
  close(): void;
  readonly closed: boolean;
}

abstract class BaseTransport implements MessageTransport {
  #messageListeners = new Set<(message: unknown) => void>();
  #closeListeners = new Set<(error?: Error) => void>();
  #closed = false;
  #closeError: Error | undefined;

  abstract send(message: object): void;
  abstract close(): void;

  get closed(): boolean {
    return this.#closed;
  }

  onMessage(listener: (message: unknown) => void): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  onClose(listener: (error?: Error) => void): () => void {
    if (this.#closed) {
      queueMicrotask(() => guarded(() => listener(this.#closeError)));
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  protected deliver(message: unknown): void {
    if (this.#closed) return;
    for (const l of [...this.#messageListeners]) guarded(() => l(message));
  }

  protected finish(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = error;
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    this.#messageListeners.clear();
    for (const l of listeners) guarded(() => l(error));
  }
}

function guarded(f: () => void): void {
  try {
    f();
  } catch (e) {
    process.emitWarning(`a transport listener threw: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** What PortTransport needs: a worker MessagePort, parentPort, or a Worker object. */
export interface PortEndpoint {
  postMessage(value: unknown): void;
  on(event: 'message' | 'close', listener: (value?: unknown) => void): unknown;
  off(event: 'message' | 'close', listener: (value?: unknown) => void): unknown;
  close?(): void;
}

/** Messages travel by structured clone. A MessagePort's 'close' ends the transport; for a Worker, call markClosed. */
export class PortTransport extends BaseTransport {
  readonly #port: PortEndpoint;
  readonly #onMessage = (value?: unknown) => this.deliver(value);
  readonly #onClose = () => this.markClosed();

  constructor(port: PortEndpoint) {
    super();
    this.#port = port;
    port.on('message', this.#onMessage);
    port.on('close', this.#onClose);
  }

  send(message: object): void {
    if (this.closed) throw new RpcError('closed', 'the engine channel is closed');
    try {
      this.#port.postMessage(message);
    } catch (e) {
      throw new RpcError('unsendable', `message cannot be sent: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Ends the transport without touching the port (e.g. its worker exited). */
  markClosed(error?: Error): void {
    this.#port.off('message', this.#onMessage);
    this.#port.off('close', this.#onClose);
    this.finish(error);
  }

  close(): void {
    if (this.closed) return;
    this.markClosed();
    this.#port.close?.();
  }
}

/** Newline-delimited JSON over a stream socket. Invalid lines are counted and, when an id shows, delivered as
 *  `{ type: 'invalid', id }` so a server can answer them; a line over maxLineBytes closes the connection. */
export class SocketTransport extends BaseTransport {
  /** Lines that were not valid JSON. */
  invalidLines = 0;
  readonly #socket: Socket;
  readonly #maxLineBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(socket: Socket, opts: { maxLineBytes?: number } = {}) {
    super();
    this.#socket = socket;
    this.#maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
    let failure: Error | undefined;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (e) => {
      failure ??= e;
    });
    socket.on('close', () => this.finish(failure));
  }

  send(message: object): void {
    if (this.closed || this.#socket.destroyed) throw new RpcError('closed', 'the connection is closed');
    let line: string;
    try {
      line = `${JSON.stringify(message)}\n`;
    } catch (e) {
      throw new RpcError('unsendable', `message is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (Buffer.byteLength(line) > this.#maxLineBytes + 1) {
      throw new RpcError('too-large', `message is larger than ${this.#maxLineBytes} bytes`);
    }
    if (this.#socket.writableLength > MAX_QUEUED_BYTES) {
      this.#socket.destroy(new RpcError('closed', 'the peer is not reading its messages'));
      throw new RpcError('closed', 'the peer is not reading its messages');
    }
    this.#socket.write(line);
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #onData(chunk: Buffer): void {
    let start = 0;
    while (!this.closed) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.#pendingBytes + part.length > this.#maxLineBytes) {
        this.#tooLong();
        return;
      }
      const line = this.#pending.length > 0 ? Buffer.concat([...this.#pending, part]) : part;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#onLine(line.toString('utf8'));
    }
    if (this.closed || start >= chunk.length) return;
    const rest = chunk.subarray(start);
    this.#pendingBytes += rest.length;
    if (this.#pendingBytes > this.#maxLineBytes) this.#tooLong();
    else this.#pending.push(rest);
  }

  #onLine(text: string): void {
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.invalidLines++;
      const id = /"id"\s*:\s*(\d{1,15})\b/.exec(text.slice(0, 4096))?.[1];
      if (id !== undefined) this.deliver({ type: 'invalid', id: Number(id) });
      return;
    }
    this.deliver(value);
  }

  #tooLong(): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#socket.destroy(new RpcError('too-large', `a message line is longer than ${this.#maxLineBytes} bytes`));
  }
}

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
  return undefined;
}

export interface ServeOptions {
  /** Told about unexpected failures (their details never go to the peer). */
  log?: (level: 'warn' | 'error', message: string) => void;
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

  const onRequest = async (m: unknown): Promise<void> => {
    if (!isRecord(m) || typeof m.id !== 'number' || !Number.isSafeInteger(m.id)) return;
    const id = m.id;
    const problem = requestProblem(m);
    if (problem !== undefined) return fail(id, { code: 'bad-request', message: problem });
    const cmd = m.cmd as CommandName;
    try {
      const result = await api.handle(cmd, m.args as CommandMap[CommandName]['args']);
      send({ type: 'reply', id, ok: true, result });
    } catch (e) {
      if (e instanceof EngineError) return fail(id, e.toBody());
      if (e instanceof RpcError) return fail(id, { code: 'internal', message: e.message });
      opts.log?.('error', `"${cmd}" failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      fail(id, { code: 'internal', message: `internal error while handling "${cmd}"` });
    }
  };

  const offEvents = api.onEvent((e) => send(e));
  const offMessages = transport.onMessage((m) => void onRequest(m));
  const offClose = transport.onClose(() => stop());
  function stop(): void {
    if (stopped) return;
    stopped = true;
    offEvents();
    offMessages();
    offClose();
  }
  return stop;
}

export interface RequestOptions {
  /** Milliseconds to wait for the reply; 0 = wait as long as the transport is open. Default 30 s. */
  timeoutMs?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
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
      const id = this.#nextId++;
      const pending: Pending = { resolve: resolve as (v: unknown) => void, reject };
      const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        pending.timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(new RpcError('timeout', `the engine did not answer "${cmd}" within ${seconds(timeoutMs)}`));
        }, timeoutMs);
      }
      this.#pending.set(id, pending);
      try {
        this.#transport.send({ type: 'request', id, cmd, args });
      } catch (e) {
        clearTimeout(pending.timer);
        this.#pending.delete(id);
        reject(e);
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
    if (m.type !== 'reply' || typeof m.id !== 'number') return;
    const p = this.#pending.get(m.id);
    if (!p) return;
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
