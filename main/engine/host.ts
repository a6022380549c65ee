// Runs the engine in a worker_thread and speaks the engine protocol to it: host.client sends commands and
// receives events. Used by the daemon and by the app's main process alike.
import type { ResourceLimits, Worker } from 'node:worker_threads';
import type { DataPathSettings } from './engine.ts';
import { EngineClient, PortTransport } from './ipc/rpc.ts';
import { spawnSiblingWorker } from './ipc/thread.ts';

/** Messages between host and worker outside the engine protocol (serveEngine ignores them: they carry no id). */
export type WorkerControl = { type: 'ready' } | { type: 'shutdown' };

export interface EngineHostOptions {
  /** How long the worker may take to load before start() fails; default 20 s. */
  startTimeoutMs?: number;
  /** How long stop() lets the engine close before the thread is terminated; default 3 s. */
  stopTimeoutMs?: number;
  /** The tailnet data path (TUN + UDP); absent = control plane only. Passed to the worker as workerData. */
  dataPath?: DataPathSettings;
}

export class EngineHost {
  readonly client: EngineClient;
  readonly #worker: Worker;
  readonly #transport: PortTransport;
  readonly #exited: Promise<void>;
  readonly #stopTimeoutMs: number;
  #crash: Error | undefined;
  #stopping: Promise<void> | undefined;

  private constructor(worker: Worker, stopTimeoutMs: number) {
    this.#worker = worker;
    this.#transport = new PortTransport(worker);
    this.client = new EngineClient(this.#transport);
    this.#stopTimeoutMs = stopTimeoutMs;
    worker.on('error', (e) => {
      this.#crash = e;
    });
    this.#exited = new Promise<void>((resolve) => {
      worker.once('exit', (code) => {
        if (this.#stopping) this.#transport.markClosed();
        else if (this.#crash)
          this.#transport.markClosed(new Error(`the engine worker crashed: ${this.#crash.message}`));
        else this.#transport.markClosed(new Error(`the engine worker exited unexpectedly (code ${code})`));
        resolve();
      });
    });
  }

  /** Spawns the worker and resolves once the engine in it listens. */
  static async start(opts: EngineHostOptions = {}): Promise<EngineHost> {
    const host = new EngineHost(spawnWorker({ dataPath: opts.dataPath }), opts.stopTimeoutMs ?? 3000);
    await host.#ready(opts.startTimeoutMs ?? 20_000);
    return host;
  }

  #ready(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.#worker.off('message', onMessage);
        offClose();
        if (error) reject(error);
        else resolve();
      };
      const onMessage = (m: unknown) => {
        if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ready') done();
      };
      const offClose = this.#transport.onClose(() =>
        done(new Error(`the engine worker failed to start: ${this.#crash?.message ?? 'it exited'}`)),
      );
      const timer = setTimeout(() => {
        void this.#worker.terminate();
        done(new Error(`the engine worker did not start within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.#worker.on('message', onMessage);
    });
  }

  /** The engine thread's heap limits as V8 applied them. */
  get resourceLimits(): ResourceLimits {
    return this.#worker.resourceLimits ?? {};
  }

  /** Called once when the worker is gone; with an error unless stop() ended it. */
  onExit(listener: (error?: Error) => void): () => void {
    return this.client.onClose(listener);
  }

  /** Asks the engine to close; terminates the thread if it has not ended after the stop timeout. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#worker.postMessage({ type: 'shutdown' } satisfies WorkerControl);
      const timer = setTimeout(() => void this.#worker.terminate(), this.#stopTimeoutMs);
      await this.#exited;
      clearTimeout(timer);
    })();
    return this.#stopping;
  }
}

/**
 * The engine thread's young generation, MB. The data path makes short-lived objects at a high rate (views, segment
 * headers) over an old generation of ~15 MB; with V8's default (up to 16 MB semi-spaces) the old generation's
 * headroom stays under the young one's capacity, so V8 marked the whole heap every ~100 ms under load (a
 * Mark-Compact per 100 ms in --trace-gc, ~10 % of the thread). A small young generation makes those frequent, cheap
 * scavenges instead: an upload through the userspace stack took 3.5 ms of CPU per MB instead of 3.9 (bench, same
 * run), and its Mark-Compacts in a 2-run bench went from 34 to 1 (7 once the stack's send buffer grew to 4 MiB: the
 * socket reads it holds live longer).
 */
export const ENGINE_YOUNG_GENERATION_MB = 8;

/** The engine's thread: worker.js next to this module when compiled, worker.ts under tsx. */
function spawnWorker(workerData: { dataPath?: DataPathSettings }): Worker {
  const here = import.meta.url;
  return spawnSiblingWorker(here, 'worker', workerData, { maxYoungGenerationSizeMb: ENGINE_YOUNG_GENERATION_MB });
}
