// A request's byte source across a transport: the engine reads a file the caller opened, piece by piece, by
// asking the caller ({type:'read', id, seq, offset, length}) and getting the bytes back ({type:'data', id, seq,
// bytes} or {…, error}). Each read is one round trip of at most MAX_READ_BYTES, so the caller never queues more
// than the engine asked for, and a retry can read again from any offset.
import { type ByteSource, EngineError, MAX_READ_BYTES, ownedBuffer } from '../protocol.ts';
import { RpcError } from './rpc-transport.ts';

/** How long the caller has to supply one read. */
export const READ_TIMEOUT_MS = 30_000;

export interface ReadMessage {
  type: 'read';
  id: number;
  seq: number;
  offset: number;
  length: number;
}

export type DataMessage =
  | { type: 'data'; id: number; seq: number; bytes: Uint8Array }
  | { type: 'data'; id: number; seq: number; error: string };

interface Waiting {
  length: number;
  resolve(bytes: Uint8Array): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** The serving side's view of the caller's file. Reads fail once the request ends or the caller goes away. */
export class RemoteSource implements ByteSource {
  /** The bytes of an answer were copied out of the channel for this one read. */
  readonly readsOwned = true;
  readonly #send: (m: ReadMessage) => void;
  readonly #id: number;
  readonly #waiting = new Map<number, Waiting>();
  #seq = 0;
  #closed: Error | undefined;

  constructor(
    readonly size: number,
    id: number,
    send: (m: ReadMessage) => void,
  ) {
    this.#id = id;
    this.#send = send;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      return Promise.reject(new RangeError(`bad read of ${length} bytes at ${offset}`));
    }
    if (length > MAX_READ_BYTES) return Promise.reject(new RangeError(`a read is at most ${MAX_READ_BYTES} bytes`));
    if (this.#closed) return Promise.reject(this.#closed);
    if (length === 0 || offset >= this.size) return Promise.resolve(new Uint8Array(0));
    const seq = ++this.#seq;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(seq);
        reject(
          new RpcError('timeout', `the sender did not supply the file's bytes within ${READ_TIMEOUT_MS / 1000} s`),
        );
      }, READ_TIMEOUT_MS);
      this.#waiting.set(seq, { length, resolve, reject, timer });
      try {
        this.#send({ type: 'read', id: this.#id, seq, offset, length });
      } catch (e) {
        clearTimeout(timer);
        this.#waiting.delete(seq);
        reject(e);
      }
    });
  }

  /** A {type:'data'} message for this source. */
  answer(m: Record<string, unknown>): void {
    const seq = typeof m.seq === 'number' ? m.seq : -1;
    const w = this.#waiting.get(seq);
    if (!w) return;
    this.#waiting.delete(seq);
    clearTimeout(w.timer);
    if (typeof m.error === 'string') {
      w.reject(new EngineError('transfer-failed', `the sender could not read the file: ${m.error.slice(0, 300)}`));
    } else if (m.bytes instanceof Uint8Array && m.bytes.length <= w.length) {
      w.resolve(m.bytes);
    } else {
      w.reject(new EngineError('bad-request', 'the sender answered a read with something other than the bytes'));
    }
  }

  /** The request ended: every read still waiting fails, and so does every later one. */
  close(error: Error = new RpcError('closed', 'the sender is gone')): void {
    this.#closed ??= error;
    for (const w of this.#waiting.values()) {
      clearTimeout(w.timer);
      w.reject(this.#closed);
    }
    this.#waiting.clear();
  }
}

/** The calling side: answers one read message from source, through send. */
export function answerRead(
  source: ByteSource,
  m: Record<string, unknown>,
  send: (d: DataMessage, transfer?: readonly ArrayBuffer[]) => void,
): void {
  const { id, seq, offset, length } = m;
  if (typeof id !== 'number' || typeof seq !== 'number') return;
  const reply = (d: DataMessage, transfer?: readonly ArrayBuffer[]) => {
    try {
      send(d, transfer);
    } catch {} // the connection is gone: the request fails on its own
  };
  const ok =
    Number.isSafeInteger(offset) &&
    Number.isSafeInteger(length) &&
    (offset as number) >= 0 &&
    (length as number) >= 0 &&
    (length as number) <= MAX_READ_BYTES;
  if (!ok) {
    reply({ type: 'data', id, seq, error: 'bad read request' });
    return;
  }
  source.read(offset as number, length as number).then(
    (bytes) => {
      const own = ownedBuffer(source, bytes); // moved, not copied, across a worker port
      reply({ type: 'data', id, seq, bytes }, own ? [own] : undefined);
    },
    (e: unknown) => reply({ type: 'data', id, seq, error: e instanceof Error ? e.message : String(e) }),
  );
}
