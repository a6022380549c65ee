// The Taildrop receive thread (see receive-thread.ts): the PeerAPI server and the inbox's writes, judged by the
// caller table the engine sends. Nothing here trusts a caller more than the engine's table says.
import { parentPort, workerData } from 'node:worker_threads';
import { Inbox } from './inbox.ts';
import { PeerApi } from './peerapi.ts';
import type { CallerTable, ReceiveThreadReply, ReceiveThreadRequest, ReceiveWorkerData } from './receive-thread.ts';

const port = parentPort;
if (!port) throw new Error('receive-worker.ts runs only inside a worker thread');
const data = workerData as ReceiveWorkerData;
if (data.failAtStart) throw new Error('receive thread: failing at start, as asked');
const reply = (m: ReceiveThreadReply) => port.postMessage(m);
const log = (message: string) => reply({ type: 'log', message });
const inbox = new Inbox(data.stateDir);

let callers: CallerTable = new Map();
let fileSharing = false;
let api: PeerApi | undefined;

/** Listen requests one at a time, so a later one never closes a server an earlier one is still opening. */
let queue: Promise<void> = Promise.resolve();

async function listen(id: number, addresses: string[]): Promise<void> {
  api?.close();
  api = undefined;
  const next = new PeerApi({
    inbox,
    identify: (ip) => callers.get(ip),
    fileSharing: () => fileSharing,
    log,
    onReceived: (file) => reply({ type: 'received', file }),
    blockingWrites: true, // this thread is the PeerAPI's own
  });
  try {
    await inbox.ensure();
    await next.listen(addresses);
    api = next;
    reply({ type: 'listening', id, ports: { v4: next.port4, v6: next.port6 } });
  } catch (e) {
    next.close();
    reply({ type: 'listenFailed', id, message: e instanceof Error ? e.message : String(e) });
  }
}

port.on('message', (m: ReceiveThreadRequest) => {
  if (m.type === 'callers') {
    callers = m.callers;
    fileSharing = m.fileSharing;
  } else if (m.type === 'listen') {
    queue = queue.then(() => listen(m.id, m.addresses));
  } else if (m.type === 'close') {
    queue = queue.then(() => {
      api?.close();
      api = undefined;
    });
  }
});
