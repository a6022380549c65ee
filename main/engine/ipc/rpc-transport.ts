// The carriers of the engine's message protocol: a worker MessagePort (structured clone, bytes included) and a
// stream socket — one JSON value per line (lines ≤ 1 MiB), and a message holding bytes (a Uint8Array anywhere in
// it) travels as a line {"$attach":[n…],"m":…} with each {"$bytes":i} in m standing for raw bytes that follow the
// line, so a file's bytes cross the daemon's socket without base64.
import type { Socket } from 'node:net';

export const MAX_LINE_BYTES = 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;
/** The most raw bytes one socket message may carry (a read of MAX_READ_BYTES and then some). */
export const MAX_ATTACHMENT_BYTES = 4 * MAX_LINE_BYTES;
/** A socket peer that stops reading is cut off once this much output is queued for it. */
const MAX_QUEUED_BYTES = 16 * MAX_LINE_BYTES;

/** A failure of the carrier, not of the engine: the peer went away, did not answer, or a message cannot travel. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly kind: 'timeout' | 'closed' | 'too-large' | 'unsendable' | 'cancelled',
    message: string,
  ) {
    super(message);
  }
}

/** A two-way channel of protocol messages. Listeners must not throw (a throw becomes a process warning). */
export interface MessageTransport {
  /**
   * Throws RpcError when the transport is closed or the message cannot be carried. transfer: buffers in the message
   * the sender gives up (a worker port moves them rather than copies; a socket copies anyway).
   */
  send(message: object, transfer?: readonly ArrayBuffer[]): void;
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

  abstract send(message: object, transfer?: readonly ArrayBuffer[]): void;
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

export function guarded(f: () => void): void {
  try {
    f();
  } catch (e) {
    process.emitWarning(`a transport listener threw: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** What PortTransport needs: a worker MessagePort, parentPort, or a Worker object. */
export interface PortEndpoint {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
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

  send(message: object, transfer?: readonly ArrayBuffer[]): void {
    if (this.closed) throw new RpcError('closed', 'the engine channel is closed');
    try {
      this.#port.postMessage(message, transfer);
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

/** A message whose raw bytes are still arriving: the lengths announced, and the bytes so far. */
interface Attaching {
  message: unknown;
  lengths: number[];
  chunks: Buffer[];
  missing: number;
}

/** Newline-delimited JSON over a stream socket. Invalid lines are counted and, when an id shows, delivered as
 *  `{ type: 'invalid', id }` so a server can answer them; a line over maxLineBytes, or bytes announced past
 *  MAX_ATTACHMENT_BYTES, close the connection. */
export class SocketTransport extends BaseTransport {
  /** Lines that were not valid JSON. */
  invalidLines = 0;
  readonly #socket: Socket;
  readonly #maxLineBytes: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #attaching: Attaching | undefined;

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
    const blobs: Uint8Array[] = [];
    let line: string;
    try {
      // The bytes are taken out before JSON.stringify sees them: it would call a Buffer's toJSON first, which
      // spells out every byte as a number (a million-element array per MiB read, only to be thrown away).
      const json = JSON.stringify(withoutBytes(message, blobs, 0));
      line =
        blobs.length === 0 ? `${json}\n` : `{"$attach":${JSON.stringify(blobs.map((b) => b.length))},"m":${json}}\n`;
    } catch (e) {
      throw new RpcError('unsendable', `message is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (Buffer.byteLength(line) > this.#maxLineBytes + 1) {
      throw new RpcError('too-large', `message is larger than ${this.#maxLineBytes} bytes`);
    }
    if (blobs.reduce((n, b) => n + b.length, 0) > MAX_ATTACHMENT_BYTES) {
      throw new RpcError('too-large', `message carries more than ${MAX_ATTACHMENT_BYTES} bytes`);
    }
    if (this.#socket.writableLength > MAX_QUEUED_BYTES) {
      this.#socket.destroy(new RpcError('closed', 'the peer is not reading its messages'));
      throw new RpcError('closed', 'the peer is not reading its messages');
    }
    this.#socket.write(line);
    for (const b of blobs) if (b.length > 0) this.#socket.write(b);
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #onData(chunk: Buffer): void {
    let start = 0;
    while (!this.closed && start < chunk.length) {
      const att = this.#attaching;
      if (att) {
        const take = Math.min(att.missing, chunk.length - start);
        att.chunks.push(chunk.subarray(start, start + take));
        att.missing -= take;
        start += take;
        if (att.missing === 0) this.#attached(att);
        continue;
      }
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const part = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.#pendingBytes + part.length > this.#maxLineBytes) {
        this.#fail(`a message line is longer than ${this.#maxLineBytes} bytes`);
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
    if (this.#pendingBytes > this.#maxLineBytes)
      this.#fail(`a message line is longer than ${this.#maxLineBytes} bytes`);
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
    const lengths = attachmentLengths(value);
    if (lengths === undefined) {
      this.deliver(value);
      return;
    }
    if (lengths === null) {
      this.#fail('a message announced bytes it may not carry');
      return;
    }
    const message = (value as { m: unknown }).m;
    const missing = lengths.reduce((a, b) => a + b, 0);
    this.#attaching = { message, lengths, chunks: [], missing };
    if (missing === 0) this.#attached(this.#attaching);
  }

  #attached(att: Attaching): void {
    this.#attaching = undefined;
    // One copy of the bytes, whatever the reads were: the blobs are views into memory of their own, not into a
    // socket chunk they would keep alive.
    const all = att.chunks.length === 1 ? Buffer.from(att.chunks[0] as Buffer) : Buffer.concat(att.chunks);
    const blobs: Buffer[] = [];
    let at = 0;
    for (const n of att.lengths) {
      blobs.push(all.subarray(at, at + n));
      at += n;
    }
    this.deliver(revive(att.message, blobs, 0));
  }

  #fail(why: string): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#attaching = undefined;
    this.#socket.destroy(new RpcError('too-large', why));
  }
}

/** The lengths a {"$attach": [...], "m": ...} line announces; undefined for a plain message, null when bad. */
function attachmentLengths(v: unknown): number[] | undefined | null {
  if (typeof v !== 'object' || v === null || !Object.hasOwn(v, '$attach')) return undefined;
  const lengths = (v as { $attach: unknown }).$attach;
  if (!Array.isArray(lengths) || lengths.length === 0 || lengths.length > 16 || !Object.hasOwn(v, 'm')) return null;
  let total = 0;
  for (const n of lengths) {
    if (!Number.isSafeInteger(n) || n < 0) return null;
    total += n;
  }
  return total <= MAX_ATTACHMENT_BYTES ? (lengths as number[]) : null;
}

/** v with each Uint8Array put in blobs and replaced by {"$bytes": i}; the inverse of revive, to the same depth. */
function withoutBytes(v: unknown, blobs: Uint8Array[], depth: number): unknown {
  if (v instanceof Uint8Array) {
    blobs.push(v);
    return { $bytes: blobs.length - 1 };
  }
  if (typeof v !== 'object' || v === null || depth > 8) return v;
  if (Array.isArray(v)) return v.map((x) => withoutBytes(x, blobs, depth + 1));
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return v; // toJSON's own
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    if (k !== '__proto__') out[k] = withoutBytes((v as Record<string, unknown>)[k], blobs, depth + 1);
  }
  return out;
}

/** m with each {"$bytes": i} replaced by blobs[i]; messages are shallow, so the walk stops at depth 8. */
function revive(v: unknown, blobs: Buffer[], depth: number): unknown {
  if (typeof v !== 'object' || v === null || depth > 8) return v;
  if (Array.isArray(v)) return v.map((x) => revive(x, blobs, depth + 1));
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === '$bytes') {
    const i = (v as { $bytes: unknown }).$bytes;
    return typeof i === 'number' && blobs[i] !== undefined ? blobs[i] : v;
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (k === '__proto__') continue;
    out[k] = revive((v as Record<string, unknown>)[k], blobs, depth + 1);
  }
  return out;
}
