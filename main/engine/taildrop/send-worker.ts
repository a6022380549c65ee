// The Taildrop send thread (see send-thread.ts): runs sendFile for the engine and reports progress and results.
// The file's bytes come from the engine's thread, one read at a time — or from a descriptor this thread owns.
import { parentPort } from 'node:worker_threads';
import { FdSource } from '../fdpass/fd-source.ts';
import type { ByteSource } from '../protocol.ts';
import { sendFile, TaildropSendError } from './send.ts';
import type { SendThreadReply, SendThreadRequest } from './send-thread.ts';

const port = parentPort;
if (!port) throw new Error('send-worker.ts runs only inside a worker thread');
const reply = (m: SendThreadReply) => port.postMessage(m);

interface Running {
  ac: AbortController;
  reads: Map<number, { resolve(b: Uint8Array): void; reject(e: Error): void }>;
}
const running = new Map<number, Running>();

/** The file of send id, read through the engine's thread. */
function sourceOf(id: number, size: number, r: Running): ByteSource {
  let seq = 0;
  return {
    size,
    read(offset, length) {
      if (r.ac.signal.aborted) return Promise.reject(new TaildropSendError('cancelled'));
      const n = ++seq;
      return new Promise((resolve, reject) => {
        r.reads.set(n, { resolve, reject });
        reply({ type: 'read', id, seq: n, offset, length });
      });
    },
  };
}

port.on('message', (m: SendThreadRequest) => {
  const r = running.get(m.id);
  if (m.type === 'cancel') {
    r?.ac.abort();
    for (const w of r?.reads.values() ?? []) w.reject(new TaildropSendError('cancelled'));
    r?.reads.clear();
    return;
  }
  if (m.type === 'data') {
    const w = r?.reads.get(m.seq);
    r?.reads.delete(m.seq);
    if (m.bytes) w?.resolve(m.bytes);
    else w?.reject(new Error(m.error ?? 'the file could not be read'));
    return;
  }
  if (m.type !== 'send') return;
  const run: Running = { ac: new AbortController(), reads: new Map() };
  running.set(m.id, run);
  const own = typeof m.fd === 'number' ? new FdSource(m.fd, m.size, true) : undefined; // this thread's own reads
  sendFile({
    base: m.base,
    source: own ?? sourceOf(m.id, m.size, run),
    name: m.name,
    stallMs: m.stallMs,
    kernelCopy: own !== undefined, // this thread is the sends' own: sendfile may wait for the socket here
    signal: run.ac.signal,
    onProgress: (progress) => reply({ type: 'progress', id: m.id, progress }),
  })
    .then((r) => reply({ type: 'done', id: m.id, ...r }))
    .catch((e: Error & { code?: unknown; status?: number }) =>
      reply({
        type: 'error',
        id: m.id,
        message: e.message,
        code: typeof e.code === 'string' ? e.code : undefined,
        status: e.status,
        sendError: e instanceof TaildropSendError,
      }),
    )
    .finally(() => {
      running.delete(m.id);
      void own?.close(); // after the reads in flight, so the number is not reused under them
    });
});
