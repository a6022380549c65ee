// The engine's worker_thread entry: one engine served over parentPort with the engine protocol. The host's
// { type: 'shutdown' } closes the engine and ends the thread.
import { parentPort, workerData } from 'node:worker_threads';
import { createEngine, type DataPathSettings } from './engine.ts';
import type { WorkerControl } from './host.ts';
import { PortTransport, serveEngine } from './ipc/rpc.ts';
import type { EngineEvent } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('main/engine/worker.ts runs only inside a worker thread');

const log = (level: 'info' | 'warn' | 'error', message: string): void => {
  port.postMessage({ type: 'event', event: 'log', level, message } satisfies EngineEvent);
};

// The engine reports its own log lines as 'log' events; `log` here is for failures of the serving itself.
const data = (workerData ?? {}) as { dataPath?: DataPathSettings };
const engine = createEngine({ dataPath: data.dataPath });
serveEngine(engine, new PortTransport(port), { log, acceptFds: true });

let closing = false;
port.on('message', (m: unknown) => {
  if (closing || typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'shutdown') return;
  closing = true;
  engine
    .close()
    .catch((e: unknown) => log('error', `engine close failed: ${e instanceof Error ? e.message : String(e)}`))
    .finally(() => process.exit(0));
});

port.postMessage({ type: 'ready' } satisfies WorkerControl);
