// Taildrop sends run in a thread of their own. Writing to a TCP socket does the kernel's TCP and IP work in the
// writer's thread; on the engine's thread it would compete with the packet path that carries those very packets
// (the engine is CPU-bound at full speed), so a send went ~15 % slower than iperf3 through the same tunnel.
// One thread serves every send and stays for the next; if it cannot start, sends run where they are asked.
// The thread reads the file through this one: it asks for each piece ('read') and gets it back ('data') — or,
// when the file came as a descriptor (fdpass/), it gets a copy of the descriptor and reads the file itself.
import type { Worker } from 'node:worker_threads';
import { sourceFd } from '../fdpass/fd-source.ts';
import { closeQuietly } from '../fdpass/handover.ts';
import { fdAddon } from '../fdpass/native-fd.ts';
import { spawnSiblingWorker } from '../ipc/thread.ts';
import { type ByteSource, ownedBuffer } from '../protocol.ts';
import { type SendOptions, type SendProgress, sendFile, TaildropSendError } from './send.ts';

/** Main thread → send thread. */
export type SendThreadRequest =
  | { type: 'send'; id: number; base: string; size: number; name: string; stallMs?: number; fd?: number }
  | { type: 'cancel'; id: number }
  | { type: 'data'; id: number; seq: number; bytes?: Uint8Array; error?: string };

/** Send thread → main thread. */
export type SendThreadReply =
  | { type: 'read'; id: number; seq: number; offset: number; length: number }
  | { type: 'progress'; id: number; progress: SendProgress }
  | { type: 'done'; id: number; total: number; resumedFrom: number }
  | { type: 'error'; id: number; message: string; code?: string; status?: number; sendError: boolean };

interface Pending {
  resolve: (r: { total: number; resumedFrom: number }) => void;
  reject: (e: Error) => void;
  onProgress?: (p: SendProgress) => void;
  source: ByteSource;
}

function ownCopy(source: ByteSource): number | undefined {
  const fd = sourceFd(source);
  const addon = fdAddon();
  if (fd === undefined || !addon) return undefined;
  try {
    return addon.fdDup(fd);
  } catch {
    return undefined; // the thread asks for the bytes instead
  }
}

export class SendThread {
  #worker: Worker | undefined;
  /** Descriptor copies the current thread holds for sends it has not answered: closed here if it dies first (only
   *  once it has exited, so no read of its own can meet a number reused meanwhile). */
  #handed = new Map<number, number>();
  #broken = false;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();

  /** log: where a thread that cannot start is told of (the sends then run on the engine's thread). */
  constructor(private readonly log: (message: string) => void = () => {}) {}

  send(o: SendOptions): Promise<{ total: number; resumedFrom: number }> {
    const worker = this.#ensure();
    if (!worker) return sendFile(o);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress: o.onProgress, source: o.source });
      const cancel = () => worker.postMessage({ type: 'cancel', id } satisfies SendThreadRequest);
      o.signal?.addEventListener('abort', cancel, { once: true });
      const settle = () => o.signal?.removeEventListener('abort', cancel);
      const p = this.#pending.get(id) as Pending;
      p.resolve = (r) => {
        settle();
        resolve(r);
      };
      p.reject = (e) => {
        settle();
        reject(e);
      };
      // The thread's own copy of the descriptor, which it closes when its reads are done: this one is closed by
      // the request's end, which may come first (a cancel) while the thread still has a read in flight.
      const fd = ownCopy(o.source);
      if (fd !== undefined) this.#handed.set(id, fd);
      try {
        worker.postMessage({
          type: 'send',
          id,
          base: o.base,
          size: o.source.size,
          name: o.name,
          stallMs: o.stallMs,
          fd,
        } satisfies SendThreadRequest);
      } catch (e) {
        if (fd !== undefined) closeQuietly(fd);
        this.#handed.delete(id);
        this.#pending.delete(id);
        p.reject(e as Error);
        return;
      }
      if (o.signal?.aborted) cancel();
    });
  }

  /** Starts the thread ahead of the first send: its start-up (half a second from sources under tsx, the module
   *  graph loaded anew) would otherwise count against that send. */
  start(): void {
    this.#ensure();
  }

  /** A send thread is running (false before the first send, or when none could start). */
  get threaded(): boolean {
    return this.#worker !== undefined;
  }

  async close(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    this.#fail(w, new TaildropSendError('cancelled: Taildrop stopped'));
    await w.terminate();
  }

  #ensure(): Worker | undefined {
    if (this.#worker || this.#broken) return this.#worker;
    let worker: Worker;
    try {
      worker = spawnSiblingWorker(import.meta.url, 'send-worker', undefined);
    } catch (e) {
      this.#broken = true;
      this.log(`taildrop: no send thread (${(e as Error).message}); sending on the engine's thread`);
      return undefined;
    }
    worker.unref(); // an idle send thread must not keep the process alive
    const handed = new Map<number, number>();
    this.#handed = handed;
    worker.on('message', (m: SendThreadReply) => this.#onReply(m));
    worker.on('error', (e) => this.#fail(worker, e));
    worker.on('exit', () => {
      this.#fail(worker, new Error('the Taildrop send thread ended'));
      for (const fd of handed.values()) closeQuietly(fd);
      handed.clear();
    });
    this.#worker = worker;
    return worker;
  }

  #onReply(m: SendThreadReply): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    if (m.type === 'read') {
      const answer = (d: SendThreadRequest, transfer?: ArrayBuffer[]) => this.#worker?.postMessage(d, transfer);
      p.source.read(m.offset, m.length).then(
        (bytes) => {
          // The file's bytes pass through the engine's thread: moved to the send thread, not copied, when ours.
          const own = ownedBuffer(p.source, bytes);
          answer({ type: 'data', id: m.id, seq: m.seq, bytes }, own ? [own] : undefined);
        },
        (e: unknown) =>
          answer({ type: 'data', id: m.id, seq: m.seq, error: e instanceof Error ? e.message : String(e) }),
      );
      return;
    }
    if (m.type === 'progress') {
      p.onProgress?.(m.progress);
      return;
    }
    this.#pending.delete(m.id);
    this.#handed.delete(m.id); // the thread closes its copy once its reads are done
    if (m.type === 'done') {
      p.resolve({ total: m.total, resumedFrom: m.resumedFrom });
      return;
    }
    const e = m.sendError ? new TaildropSendError(m.message, m.status) : new Error(m.message);
    if (m.code) Object.assign(e, { code: m.code });
    p.reject(e);
  }

  /** The thread died or was closed: its sends fail (they resume on retry) and the next send starts a new thread.
   *  A thread already replaced (closed, then another started) takes nothing with it. */
  #fail(worker: Worker, e: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }
}
