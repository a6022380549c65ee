// Taildrop's receiving side runs in a thread of its own, as its sending side does (send-thread.ts). Reading an
// upload from its TCP socket does the kernel's copy out of the socket in the reader's thread, and the HTTP parse,
// the file writes and the hashing of a resume or a deduplication follow it; on the engine's thread all of that
// competes with the packet path that brings those very bytes in through the TUN.
// The engine keeps what the netmap says — who may call (a table of caller addresses) and whether file sharing is
// on — and hands the thread each new version; the thread reports what it received and what it logs. If no thread
// can start, the PeerAPI runs here; if the thread dies, a new one listens on the same addresses and the engine
// goes on (a transfer cut by the death resumes from its partial file).
import type { Worker } from 'node:worker_threads';
import { spawnSiblingWorker } from '../ipc/thread.ts';
import { Inbox } from './inbox.ts';
import { type Caller, PeerApi, type PeerApiStream } from './peerapi.ts';

/** Caller address (no prefix length) → the netmap node holding it; our own addresses are never in it. */
export type CallerTable = ReadonlyMap<string, Caller>;

export interface PeerApiPorts {
  v4: number;
  v6: number;
}

/** Engine → receive thread. */
export type ReceiveThreadRequest =
  | { type: 'callers'; callers: CallerTable; fileSharing: boolean }
  | { type: 'listen'; id: number; addresses: string[] }
  | { type: 'close' };

/** Receive thread → engine. */
export type ReceiveThreadReply =
  | { type: 'listening'; id: number; ports: PeerApiPorts }
  | { type: 'listenFailed'; id: number; message: string }
  | { type: 'log'; message: string }
  | { type: 'received'; file: ReceivedEvent };

export interface ReceivedEvent {
  name: string;
  size: number;
  from: string;
}

/** What the worker gets at its start. */
export interface ReceiveWorkerData {
  stateDir: string;
  /** Tests only: the worker throws at start (a thread that dies at once), to prove the engine survives it. */
  failAtStart?: boolean;
}

export class ReceiveThreadError extends Error {
  override readonly name = 'ReceiveThreadError';
  constructor(
    /**
     * listen: the PeerAPI could not listen; died: the thread ended while a request waited on it; closed: close() came
     * first (the data path went down while the PeerAPI was starting).
     */
    readonly code: 'listen' | 'died' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

export interface ReceiveThreadOptions {
  stateDir: string;
  log: (message: string) => void;
  onReceived: (file: ReceivedEvent) => void;
  /** A new thread came up on other ports than the one before it: control must hear of them. */
  onPortsChanged: (ports: PeerApiPorts) => void;
  /** Delay before a dead thread is replaced (doubled on each death in a row, at most 30 s). */
  restartDelayMs?: number;
  /** Tests only: the next thread started fails at once. */
  failNextStart?: boolean;
}

const MAX_RESTART_DELAY_MS = 30_000;

function closedMeanwhile(): ReceiveThreadError {
  return new ReceiveThreadError('closed', 'the PeerAPI was closed while it started');
}

export class ReceiveThread {
  #worker: Worker | undefined;
  /** No thread could start: the PeerAPI runs on this thread. */
  #local: PeerApi | undefined;
  #noThreads = false;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (p: PeerApiPorts) => void; reject: (e: Error) => void }>();
  #callers: CallerTable = new Map();
  #fileSharing = false;
  /** The addresses the PeerAPI should be on ([] when closed) and the ports it got there. */
  #addresses: string[] = [];
  #ports: PeerApiPorts = { v4: 0, v6: 0 };
  #ending: Promise<unknown> | undefined;
  #restart: NodeJS.Timeout | undefined;
  #deathsInARow = 0;
  #startedAt = 0;
  #failNext: boolean;

  constructor(private readonly o: ReceiveThreadOptions) {
    this.#failNext = o.failNextStart === true;
  }

  /** Whether the PeerAPI runs in a thread of its own (false before the first listen or when none could start). */
  get threaded(): boolean {
    return this.#worker !== undefined;
  }

  /** Threads that died and were replaced, for status and tests. */
  restarts = 0;

  get ports(): PeerApiPorts {
    return this.#ports;
  }

  /** Who may call and whether file sharing is on: the next request is judged by these. */
  setCallers(callers: CallerTable, fileSharing: boolean): void {
    this.#callers = callers;
    this.#fileSharing = fileSharing;
    this.#worker?.postMessage({ type: 'callers', callers, fileSharing } satisfies ReceiveThreadRequest);
  }

  /** Serves on these addresses (replacing any earlier ones); the ports it got. */
  async listen(addresses: string[]): Promise<PeerApiPorts> {
    this.#addresses = addresses;
    clearTimeout(this.#restart);
    await this.#ending;
    if (this.#addresses !== addresses) throw closedMeanwhile(); // close() or another listen while the old thread ended
    const worker = this.#ensure();
    const ports = worker ? await this.#listenIn(worker, addresses) : await this.#listenHere(addresses);
    if (this.#addresses !== addresses) throw closedMeanwhile();
    this.#ports = ports;
    return ports;
  }

  /**
   * Userspace networking: the PeerAPI on this thread, fed by the netstack (acceptConnection), no OS socket. The
   * netstack's bytes come through the engine's thread anyway; a thread of its own would only add a copy.
   */
  async listenWithoutSockets(addresses: string[]): Promise<PeerApiPorts> {
    this.#addresses = [];
    clearTimeout(this.#restart);
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await w.terminate().catch(() => 0);
    this.#local?.close();
    const api = this.#newLocal();
    api.serveWithoutSockets(addresses);
    this.#local = api;
    this.#ports = { v4: api.port4, v6: api.port6 };
    return this.#ports;
  }

  /** A connection the netstack accepted on the PeerAPI's port (userspace networking). */
  acceptConnection(socket: PeerApiStream): void {
    if (this.#local) this.#local.acceptConnection(socket);
    else socket.destroy();
  }

  /** Stops serving and ends the thread; a later listen starts another. */
  close(): Promise<void> {
    this.#addresses = [];
    this.#ports = { v4: 0, v6: 0 };
    clearTimeout(this.#restart);
    // A listen waiting on the thread gets no answer from a terminated thread: it fails now rather than never.
    for (const p of this.#pending.values()) p.reject(closedMeanwhile());
    this.#pending.clear();
    this.#local?.close();
    this.#local = undefined;
    const w = this.#worker;
    this.#worker = undefined;
    if (!w) return this.#ending?.then(() => {}) ?? Promise.resolve();
    const ending = w.terminate().catch(() => 0);
    this.#ending = ending;
    return ending.then(() => {});
  }

  /** Tests only: the thread, to end it as a crash would. */
  get worker(): Worker | undefined {
    return this.#worker;
  }

  #listenIn(worker: Worker, addresses: string[]): Promise<PeerApiPorts> {
    const id = this.#nextId++;
    worker.ref(); // an idle thread lets the process end; one we wait on must not
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ type: 'listen', id, addresses } satisfies ReceiveThreadRequest);
    });
  }

  async #listenHere(addresses: string[]): Promise<PeerApiPorts> {
    this.#local?.close();
    const api = this.#newLocal();
    this.#local = api;
    try {
      await api.listen(addresses);
    } catch (e) {
      throw new ReceiveThreadError('listen', (e as Error).message);
    }
    return { v4: api.port4, v6: api.port6 };
  }

  #newLocal(): PeerApi {
    return new PeerApi({
      inbox: new Inbox(this.o.stateDir),
      identify: (ip) => this.#callers.get(ip),
      fileSharing: () => this.#fileSharing,
      log: this.o.log,
      onReceived: this.o.onReceived,
    });
  }

  #ensure(): Worker | undefined {
    if (this.#worker || this.#noThreads) return this.#worker;
    let worker: Worker;
    const data: ReceiveWorkerData = { stateDir: this.o.stateDir, failAtStart: this.#failNext };
    this.#failNext = false;
    try {
      worker = spawnSiblingWorker(import.meta.url, 'receive-worker', data);
    } catch (e) {
      this.#noThreads = true;
      this.o.log(`taildrop: no receive thread (${(e as Error).message}); receiving on the engine's thread`);
      return undefined;
    }
    worker.unref(); // a PeerAPI must not keep the process alive
    worker.on('message', (m: ReceiveThreadReply) => this.#onReply(m));
    worker.on('error', (e) => this.o.log(`taildrop: the receive thread failed: ${e.message}`));
    worker.on('exit', () => this.#died(worker));
    worker.postMessage({
      type: 'callers',
      callers: this.#callers,
      fileSharing: this.#fileSharing,
    } satisfies ReceiveThreadRequest);
    this.#worker = worker;
    this.#startedAt = Date.now();
    return worker;
  }

  #onReply(m: ReceiveThreadReply): void {
    if (m.type === 'log') {
      this.o.log(m.message);
      return;
    }
    if (m.type === 'received') {
      this.o.onReceived(m.file);
      return;
    }
    const p = this.#pending.get(m.id);
    this.#pending.delete(m.id);
    if (this.#pending.size === 0) this.#worker?.unref();
    if (m.type === 'listening') p?.resolve(m.ports);
    else p?.reject(new ReceiveThreadError('listen', m.message));
  }

  /** The thread ended. Unless we ended it, its waiting requests fail and a new one takes its addresses. */
  #died(worker: Worker): void {
    if (this.#worker !== worker) return; // closed by us
    this.#worker = undefined;
    for (const p of this.#pending.values())
      p.reject(new ReceiveThreadError('died', 'the Taildrop receive thread ended'));
    this.#pending.clear();
    if (this.#addresses.length === 0) return;
    if (Date.now() - this.#startedAt > MAX_RESTART_DELAY_MS * 2) this.#deathsInARow = 0; // it had lived: no backoff
    const delay = Math.min(MAX_RESTART_DELAY_MS, (this.o.restartDelayMs ?? 1000) * 2 ** this.#deathsInARow);
    this.#deathsInARow++;
    this.o.log(`taildrop: the receive thread ended; starting another in ${delay} ms`);
    clearTimeout(this.#restart);
    this.#restart = setTimeout(() => void this.#revive(), delay);
    this.#restart.unref();
  }

  async #revive(): Promise<void> {
    const addresses = this.#addresses;
    if (addresses.length === 0) return;
    const before = this.#ports;
    try {
      await this.listen(addresses);
      this.restarts++;
      if (this.#ports.v4 !== before.v4 || this.#ports.v6 !== before.v6) this.o.onPortsChanged(this.#ports);
    } catch (e) {
      this.o.log(`taildrop: the new receive thread cannot serve: ${(e as Error).message}`);
    }
  }
}
