// Taildrop sends as the window shows them: a queue of files, two sent at a time, each with its progress from
// the engine's fileProgress events, cancellable while queued or sending.
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Transfer } from '../../preload/api.ts';
import type { FileSendResult } from '../engine/protocol.ts';

/** How the queue reaches the engine: aborting the signal cancels the send there too. */
export interface TransferEngine {
  send(peer: string, path: string, signal: AbortSignal): Promise<FileSendResult>;
}

/** Sends at once; more would only split the same tunnel. */
const CONCURRENT_SENDS = 2;
/** Finished transfers kept for the window before the oldest are forgotten. */
const KEEP_FINISHED = 50;

interface Entry {
  transfer: Transfer;
  path: string;
  abort: AbortController;
}

export class TransferQueue {
  readonly #entries: Entry[] = [];
  #running = 0;

  constructor(
    private readonly engine: TransferEngine,
    private readonly changed: () => void,
  ) {}

  list(): Transfer[] {
    return this.#entries.map((e) => ({ ...e.transfer }));
  }

  /** Queues one transfer per path; the ids. */
  async add(peer: string, paths: readonly string[]): Promise<string[]> {
    const ids: string[] = [];
    for (const path of paths) {
      const size = await stat(path).then(
        (s) => (s.isFile() ? s.size : -1),
        () => -1,
      );
      const transfer: Transfer = {
        id: randomUUID(),
        peer,
        name: basename(path),
        sent: 0,
        total: Math.max(size, 0),
        bytesPerSecond: 0,
        state: size < 0 ? 'failed' : 'queued',
        startedAt: Date.now(),
      };
      if (size < 0) transfer.error = `${path} is not a readable file`;
      this.#entries.push({ transfer, path, abort: new AbortController() });
      ids.push(transfer.id);
    }
    this.#trim();
    this.changed();
    this.#pump();
    return ids;
  }

  /** A fileProgress event: the sending transfer to that peer with that name. */
  progress(peer: string, name: string, sent: number, total: number, bytesPerSecond: number): void {
    const e = this.#entries.find(
      (x) => x.transfer.state === 'sending' && x.transfer.peer === peer && x.transfer.name === name,
    );
    if (!e) return;
    Object.assign(e.transfer, { sent, total, bytesPerSecond });
    this.changed();
  }

  async cancel(id: string): Promise<boolean> {
    const e = this.#entries.find((x) => x.transfer.id === id);
    if (!e) return false;
    if (e.transfer.state === 'queued') {
      e.transfer.state = 'cancelled';
      this.changed();
      return true;
    }
    if (e.transfer.state !== 'sending') return false;
    e.transfer.state = 'cancelled';
    this.changed();
    e.abort.abort();
    return true;
  }

  clearFinished(): void {
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      if (isFinished(this.#entries[i].transfer)) this.#entries.splice(i, 1);
    }
    this.changed();
  }

  /** Any transfer still queued or sending. */
  get active(): boolean {
    return this.#entries.some((e) => !isFinished(e.transfer));
  }

  #pump(): void {
    while (this.#running < CONCURRENT_SENDS) {
      const next = this.#entries.find((e) => e.transfer.state === 'queued');
      if (!next) return;
      this.#running++;
      next.transfer.state = 'sending';
      next.transfer.startedAt = Date.now();
      this.changed();
      void this.#run(next).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  async #run(e: Entry): Promise<void> {
    const t = e.transfer;
    try {
      const r = await this.engine.send(t.peer, e.path, e.abort.signal);
      if (t.state === 'cancelled') return;
      Object.assign(t, { state: 'done', sent: r.total, total: r.total, resumedFrom: r.resumedFrom, name: r.name });
    } catch (err) {
      if (t.state === 'cancelled') return;
      t.state = 'failed';
      t.error = (err as Error).message;
    }
    this.changed();
  }

  #trim(): void {
    let finished = this.#entries.filter((e) => isFinished(e.transfer)).length;
    for (let i = 0; i < this.#entries.length && finished > KEEP_FINISHED; ) {
      if (isFinished(this.#entries[i].transfer)) {
        this.#entries.splice(i, 1);
        finished--;
      } else i++;
    }
  }
}

function isFinished(t: Transfer): boolean {
  return t.state === 'done' || t.state === 'failed' || t.state === 'cancelled';
}
