// Runs the engine in a worker_thread and speaks the engine protocol to it: host.client sends commands and
// receives events. Used by the daemon and by the app's main process alike.
import { Worker } from 'node:worker_threads';
import type { DataPathSettings } from './engine.ts';
import { EngineClient, PortTransport } from './rpc.ts';

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

/** From compiled JavaScript the worker is worker.js; from TypeScript sources (under tsx) a one-line bootstrap
 *  registers tsx inside the thread first: loader flags in execArgv do not reach worker threads on Node 20. */
function spawnWorker(workerData: { dataPath?: DataPathSettings }): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./worker.js', here), { workerData });
  const entry = new URL('./worker.ts', here).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  const execArgv = withoutTsxLoader(process.execArgv);
  if (execArgv.length === process.execArgv.length) return new Worker(boot, { eval: true, workerData });
  try {
    return new Worker(boot, { eval: true, execArgv, workerData });
  } catch (e) {
    // An explicit execArgv may not hold process-wide flags (--title, --max-old-space-size...) that inheriting
    // tolerates: inherit then, tsx's loader flag included (a second registration is harmless).
    if ((e as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return new Worker(boot, { eval: true, workerData });
  }
}

/** execArgv minus tsx loader flags, so tsx is never registered twice in the thread. */
function withoutTsxLoader(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = /^--(import|loader|experimental-loader)=(.*)$/.exec(a);
    if (eq && /tsx/.test(eq[2])) continue;
    if (/^--(import|loader|experimental-loader)$/.test(a) && /tsx/.test(argv[i + 1] ?? '')) {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}
