// The WebSocket transport of preload/api.ts: each socket sends calls ({type:'call', id, name, arg}) and gets
// replies with the outcome (errors as values) plus every event the backend pushes. Checks on who may connect
// (token, Host, Origin) happen before the upgrade, in server.ts.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import {
  type ApiArg,
  type ApiBackend,
  type ApiCallName,
  ApiError,
  type ApiOutcome,
  type BridgeServerMessage,
  isApiCallName,
} from '../../preload/api.ts';

/** Calls that act on the desktop of the machine running Trellis, which the browser's user may not be at; the
 *  page copies and opens links itself. */
const BROWSER_REFUSED: ReadonlySet<ApiCallName> = new Set([
  'openReceived',
  'revealReceived',
  'chooseFolder',
  'copyText',
  'openExternal',
]);

const MAX_PAYLOAD_BYTES = 1024 * 1024;
/** Calls one socket may have waiting at once; more are refused, not queued. */
const MAX_PENDING_CALLS = 64;
/** A socket that stops reading (snapshots keep coming) is dropped past this; the page reconnects and resyncs. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const CLOSE_POLICY = 1008;
const CLOSE_GOING_AWAY = 1001;

export interface BridgeOptions {
  backend: ApiBackend;
  maxConnections?: number;
  heartbeatMs?: number;
  /** Runs before a call reaches the backend; throw an ApiError to refuse it. */
  beforeCall?: (name: ApiCallName, arg: unknown) => void;
  /** Runs after a call succeeded. */
  afterCall?: (name: ApiCallName, arg: unknown) => void;
}

/** Turns whatever a call threw into an outcome: an ApiError keeps its code, anything else is 'internal'. */
export function outcomeOfError(e: unknown): ApiOutcome<never> {
  if (e instanceof ApiError) return { ok: false, error: e.toBody() };
  return { ok: false, error: { code: 'internal', message: e instanceof Error ? e.message : String(e) } };
}

type ParsedCall = { id: number; name: ApiCallName; arg: unknown } | { id?: number; problem: string };

/** Strict shape check: an object with exactly type 'call', an integer id, a known name and an optional arg. */
export function parseCall(text: string): ParsedCall {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problem: 'The message is not JSON.' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problem: 'The message is not an object.' };
  const m = v as Record<string, unknown>;
  const id = Number.isSafeInteger(m.id) ? (m.id as number) : undefined;
  if (m.type !== 'call') return { id, problem: 'The message is not a call.' };
  if (id === undefined) return { problem: 'The call has no integer id.' };
  const extra = Object.keys(m).find((k) => !['type', 'id', 'name', 'arg'].includes(k));
  if (extra !== undefined) return { id, problem: `The call has an unknown field ${JSON.stringify(extra)}.` };
  if (!isApiCallName(m.name)) return { id, problem: `There is no call named ${JSON.stringify(m.name)}.` };
  return { id, name: m.name, arg: m.arg };
}

export class Bridge {
  readonly #opts: BridgeOptions;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES, clientTracking: false });
  readonly #sockets = new Map<WebSocket, { alive: boolean; pending: number }>();
  readonly #offEvents: () => void;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(opts: BridgeOptions) {
    this.#opts = opts;
    this.#offEvents = opts.backend.onEvent((message) => {
      // Serialized once, sent to every socket.
      const frame: BridgeServerMessage = { type: 'event', event: message.event, payload: message.payload };
      this.#broadcast(JSON.stringify(frame));
    });
    this.#heartbeat = setInterval(() => this.#ping(), opts.heartbeatMs ?? 30_000);
    this.#heartbeat.unref();
  }

  get connections(): number {
    return this.#sockets.size;
  }

  /** False when the connection cap is reached (the caller answers 503). */
  hasRoom(): boolean {
    return this.#sockets.size < (this.#opts.maxConnections ?? 16);
  }

  /** Completes an upgrade the caller has already authorized. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#adopt(ws));
  }

  close(): void {
    clearInterval(this.#heartbeat);
    this.#offEvents();
    for (const ws of this.#sockets.keys()) ws.close(CLOSE_GOING_AWAY, 'trellis web is stopping');
    // Sockets that do not finish the closing handshake promptly are cut.
    const left = [...this.#sockets.keys()];
    setTimeout(() => {
      for (const ws of left) ws.terminate();
    }, 1000).unref();
    this.#wss.close();
  }

  #adopt(ws: WebSocket): void {
    const state = { alive: true, pending: 0 };
    this.#sockets.set(ws, state);
    ws.on('pong', () => {
      state.alive = true;
    });
    ws.on('message', (data, isBinary) => void this.#onMessage(ws, state, data, isBinary));
    ws.on('close', () => this.#sockets.delete(ws));
    ws.on('error', () => ws.terminate());
  }

  async #onMessage(ws: WebSocket, state: { pending: number }, data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) {
      ws.close(CLOSE_POLICY, 'binary messages are not understood');
      return;
    }
    const parsed = parseCall(data.toString());
    if ('problem' in parsed) {
      if (parsed.id === undefined) ws.close(CLOSE_POLICY, 'malformed message');
      else this.#reply(ws, parsed.id, { ok: false, error: { code: 'bad-request', message: parsed.problem } });
      return;
    }
    if (state.pending >= MAX_PENDING_CALLS) {
      const message = 'Too many calls are waiting; try again in a moment.';
      this.#reply(ws, parsed.id, { ok: false, error: { code: 'refused', message } });
      return;
    }
    state.pending++;
    try {
      this.#reply(ws, parsed.id, await this.#run(parsed.name, parsed.arg));
    } finally {
      state.pending--;
    }
  }

  async #run(name: ApiCallName, arg: unknown): Promise<ApiOutcome<unknown>> {
    try {
      if (BROWSER_REFUSED.has(name)) throw new ApiError('unsupported', 'not available in the browser');
      this.#opts.beforeCall?.(name, arg);
      // The argument's shape is the backend's to check: the controller validates every call's input itself.
      const result = await this.#opts.backend.call(name, arg as ApiArg<typeof name>);
      this.#opts.afterCall?.(name, arg);
      return { ok: true, result };
    } catch (e) {
      return outcomeOfError(e);
    }
  }

  #reply(ws: WebSocket, id: number, outcome: ApiOutcome<unknown>): void {
    const frame: BridgeServerMessage = { type: 'reply', id, outcome };
    this.#send(ws, JSON.stringify(frame));
  }

  #broadcast(text: string): void {
    for (const ws of this.#sockets.keys()) this.#send(ws, text);
  }

  #send(ws: WebSocket, text: string): void {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) ws.terminate();
    else ws.send(text);
  }

  /** A socket that did not answer the previous ping is dead (laptop asleep, network gone): drop it. */
  #ping(): void {
    for (const [ws, state] of this.#sockets) {
      if (!state.alive) {
        ws.terminate();
        continue;
      }
      state.alive = false;
      ws.ping();
    }
  }
}
