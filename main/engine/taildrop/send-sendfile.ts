// The body of a Taildrop upload by sendfile(2) (native/src/fd_sendfile.cc), when the send thread owns the file's
// descriptor and the request goes out on a kernel TCP socket: the kernel copies from the page cache to the socket,
// so the file's bytes never enter JavaScript (the read/write path cost about twice the CPU per megabyte).
// The request's head goes out through node's HTTP client as usual; once it has left the socket's buffer, the body
// is sent in slices with the event loop turning between them (the answer, a cancel, the stall watchdog). Anything
// unexpected hands back the offset reached: the caller sends the rest the ordinary way, each byte exactly once.
import type { ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep, setImmediate as turn } from 'node:timers/promises';
import { E, errnoName, type KernelCopyAddon, kernelCopyAddon, kernelSocketFd } from './kernel-copy.ts';

/** One sendfile call moves at most this much before the event loop turns. */
export const SENDFILE_SLICE_BYTES = 4 << 20;
/** One call waits at most this long in all for room in the socket (a cancel is looked at in between). */
const SENDFILE_WAIT_MS = 200;

export interface SendfileBody {
  req: ClientRequest;
  /** The file's descriptor, owned by this thread for the whole send. */
  fileFd: number;
  /** The file's bytes [from, end) are the body. */
  from: number;
  end: number;
  /** Bytes went out (progress, the stall watchdog). */
  onSent: (bytes: number) => void;
  /** Tests only: another addon (a failing one). */
  addon?: KernelCopyAddon;
}

/** How the body ended: all sent; stopped (the request is over or answered early); or fall back from `at`. */
export type SendfileOutcome = { kind: 'sent' } | { kind: 'stopped' } | { kind: 'fallback'; at: number };

/** The request is finished with: destroyed (a cancel, an error) or answered before its body was all out. */
function over(req: ClientRequest): boolean {
  return req.destroyed || (req as ClientRequest & { res?: unknown }).res != null;
}

/**
 * Waits until the request's head has left for the kernel: the socket assigned and connected, node's own queue of
 * the request empty (`outputData`, internal, guarded) and the socket's buffer drained. Undefined when the request
 * ended first or node does not show what is needed.
 */
async function headSent(req: ClientRequest): Promise<Socket | undefined> {
  for (;;) {
    if (over(req)) return undefined;
    const socket = req.socket as Socket | null;
    const queued = (req as ClientRequest & { outputData?: unknown }).outputData;
    if (!Array.isArray(queued)) return undefined;
    if (socket && !socket.connecting && queued.length === 0 && req.headersSent && socket.writableLength === 0) {
      return socket;
    }
    await sleep(1); // a one-time wait of a few milliseconds per upload (connect, then the head)
  }
}

/**
 * Sends the body by sendfile when the request's socket is a kernel one; resolves with how it ended. The caller has
 * flushed the head (req.flushHeaders()) and ends the request on 'sent'.
 */
export async function sendBodyWithSendfile(o: SendfileBody): Promise<SendfileOutcome> {
  const addon = o.addon ?? kernelCopyAddon();
  if (!addon) return { kind: 'fallback', at: o.from };
  const socket = await headSent(o.req);
  if (!socket) return over(o.req) ? { kind: 'stopped' } : { kind: 'fallback', at: o.from };
  const sockFd = kernelSocketFd(socket);
  if (sockFd === undefined) return { kind: 'fallback', at: o.from };
  let at = o.from;
  while (at < o.end) {
    // Re-checked after every turn of the loop: the socket may have been closed (its number reused) meanwhile.
    if (over(o.req)) return { kind: 'stopped' };
    if (kernelSocketFd(socket) !== sockFd) return { kind: 'fallback', at };
    const n = addon.fdSendfile(sockFd, o.fileFd, at, Math.min(SENDFILE_SLICE_BYTES, o.end - at), SENDFILE_WAIT_MS);
    if (n > 0) {
      at += n;
      o.onSent(n);
    } else if (n === 0) {
      throw new Error('the file changed while it was being read (it got shorter)');
    } else if (n === -E.EPIPE || n === -E.ECONNRESET) {
      // The peer is gone, or answered and closed: an answer already here is read before the error is taken.
      await turn();
      await turn();
      if (!over(o.req)) socket.destroy(Object.assign(new Error(`write ${errnoName(n)}`), { code: errnoName(n) }));
      return { kind: 'stopped' };
    } else if (n !== -E.EAGAIN) {
      return { kind: 'fallback', at }; // a descriptor sendfile cannot use (not a regular file...): read and write
    }
    await turn();
  }
  return { kind: 'sent' };
}
