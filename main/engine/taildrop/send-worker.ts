// The Taildrop send thread (see send-thread.ts): runs sendFile for the engine and reports progress and results.
import { parentPort } from 'node:worker_threads';
import { sendFile, TaildropSendError } from './send.ts';
import type { SendThreadReply, SendThreadRequest } from './send-thread.ts';

const port = parentPort;
if (!port) throw new Error('send-worker.ts runs only inside a worker thread');
const reply = (m: SendThreadReply) => port.postMessage(m);
const running = new Map<number, AbortController>();

port.on('message', (m: SendThreadRequest) => {
  if (m.type === 'cancel') {
    running.get(m.id)?.abort();
    return;
  }
  if (m.type !== 'send') return;
  const ac = new AbortController();
  running.set(m.id, ac);
  sendFile({
    base: m.base,
    file: m.file,
    name: m.name,
    stallMs: m.stallMs,
    signal: ac.signal,
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
    .finally(() => running.delete(m.id));
});
