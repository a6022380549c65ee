// The body of an upload by splice(2) (native/src/fd_splice.cc), on the PeerAPI's own thread, when the request came
// over a kernel TCP socket with a Content-Length: socket → pipe → partial file, the bytes never entering JavaScript
// (the read/write path cost about twice the CPU per megabyte).
// Node's HTTP server reads the socket itself (its parser consumes the libuv handle), so before the first splice its
// reading is stopped — the handle's readStop, and `_paused`, which keeps node from starting it again when the
// request is read — and what it already took (the request's buffer: body bytes parsed along with the head) is
// written first. The stream's order holds whatever node does: before each splice, any bytes node has read meanwhile
// are written first, and splice only runs between turns of the event loop, when node reads nothing.
// Node's internals used here are checked before anything is touched; when one is missing the caller reads the
// request as before. After a spliced body the parser no longer knows where the connection stands: the answer says
// `Connection: close` (the caller's part) and the connection ends with it.
import { writeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { closeQuietly } from '../fdpass/handover.ts';
import { E, errnoName, type KernelCopyAddon, kernelCopyAddon, kernelSocketFd } from './kernel-copy.ts';

/** One splice call moves at most this much before the event loop turns (and the disk is looked at). */
const SPLICE_SLICE_BYTES = 4 << 20;
/** One call waits at most this long for the socket while nothing comes: other connections are served between. */
const SPLICE_WAIT_MS = 20;

/** The parts of node's socket, handle and parser this relies on (internal; all checked first). */
interface NodeSocket extends Socket {
  _handle: { fd: number; reading: boolean; readStop(): number; readStart(): number };
  _paused: boolean;
  parser: { _consumed?: boolean; incoming?: unknown } | null;
}

export interface SpliceUpload {
  req: IncomingMessage;
  /** The partial file, open for writing; the body's first byte goes at `at`. */
  fd: number;
  at: number;
  /** The body's declared length. */
  length: number;
  /** No byte for this long: the sender is gone (the socket's own idle timer is off while splicing). */
  idleMs: number;
  /** Called with the bytes on the disk so far after each slice; throws to stop the upload (the disk floor). */
  checkpoint(copied: number): Promise<void>;
  /** Tests only: another addon. */
  addon?: KernelCopyAddon;
}

/** The socket under req when the splice path can take its body now; undefined: read it the ordinary way. */
export function spliceableSocket(req: IncomingMessage, length: number | undefined): NodeSocket | undefined {
  if (!kernelCopyAddon() || req.httpVersionMajor !== 1 || req.complete) return undefined;
  if (length === undefined || !Number.isSafeInteger(length) || length <= 0) return undefined;
  const s = req.socket as Partial<NodeSocket> | null;
  if (!s || kernelSocketFd(s) === undefined) return undefined;
  const h = s._handle as Partial<NodeSocket['_handle']> | undefined;
  if (typeof h?.readStop !== 'function' || typeof h.readStart !== 'function' || typeof h.reading !== 'boolean') {
    return undefined;
  }
  // The parser reads the handle itself (not through the socket's stream, whose buffer would hold unparsed bytes),
  // and this request is its current one.
  if (s.parser?._consumed !== true || s.parser.incoming !== req || typeof s._paused !== 'boolean') return undefined;
  if (s._paused || s.readableLength !== 0 || typeof req.readableLength !== 'number') return undefined;
  return s as NodeSocket;
}

/** Writes every byte of buf at pos (blocking: this is the PeerAPI's own thread). */
function writeAll(fd: number, buf: Buffer, pos: number): void {
  for (let done = 0; done < buf.length; ) {
    const n = writeSync(fd, buf, done, buf.length - done, pos + done);
    if (n <= 0) throw Object.assign(new Error('the disk took no more bytes'), { code: 'ENOSPC' });
    done += n;
  }
}

function errnoError(result: number): NodeJS.ErrnoException {
  const code = errnoName(result);
  return Object.assign(new Error(`splice: ${code}`), { code, errno: result, syscall: 'splice' });
}

/**
 * Moves the body from socket (spliceableSocket's answer) into the file; resolves with the bytes written — fewer
 * than declared when the sender cut the connection or went quiet for idleMs. Throws what checkpoint throws, or an
 * errno error (ENOSPC...) from the file; bytes on the disk before either stay there (the partial, for a resume).
 * On any end but the whole body, node's reading of the socket is started again (for a drained answer).
 */
export async function spliceUpload(socket: NodeSocket, o: SpliceUpload): Promise<number> {
  const addon = o.addon ?? (kernelCopyAddon() as KernelCopyAddon);
  const pipe = addon.fdPipe();
  if (typeof pipe === 'number') throw errnoError(pipe);
  const sockFd = socket._handle.fd;
  socket._paused = true;
  socket._handle.reading = false;
  socket._handle.readStop();
  socket.setTimeout(0);
  let copied = 0;
  let checked = 0;
  /** Whatever node has read of the body meanwhile (at first: the bytes that came with the head). */
  const takeBuffered = () => {
    for (let b = o.req.read() as Buffer | null; b !== null; b = o.req.read() as Buffer | null) {
      const piece = b.subarray(0, Math.max(0, o.length - copied)); // never past the declared body
      writeAll(o.fd, piece, o.at + copied);
      copied += piece.length;
    }
  };
  try {
    let quietSince = performance.now();
    while (copied < o.length) {
      takeBuffered();
      if (copied >= o.length) break;
      if (socket.destroyed || kernelSocketFd(socket) !== sockFd) break; // closed under us (the peer reset it)
      const n = addon.fdSplice(
        sockFd,
        pipe[0],
        pipe[1],
        o.fd,
        o.at + copied,
        Math.min(SPLICE_SLICE_BYTES, o.length - copied),
        SPLICE_WAIT_MS,
      );
      if (n > 0) {
        copied += n;
        quietSince = performance.now();
      } else if (n === 0 || n === -E.ECONNRESET || n === -E.ETIMEDOUT) {
        break; // the sender closed or reset the connection: a cut transfer, kept for its resume
      } else if (n !== -E.EAGAIN) {
        throw errnoError(n);
      } else if (performance.now() - quietSince >= o.idleMs) {
        socket.destroy(); // a stalled sender: closed, as the socket's idle timeout would have done
        break;
      }
      if (copied - checked >= SPLICE_SLICE_BYTES) {
        checked = copied;
        await o.checkpoint(copied);
      }
      await turn();
    }
  } finally {
    closeQuietly(pipe[0]);
    closeQuietly(pipe[1]);
    if (copied < o.length && !socket.destroyed) {
      // Not the whole body: node reads the socket again (an answer, then the rest drained, or the close seen).
      socket._paused = false;
      socket._handle.reading = true;
      socket._handle.readStart();
      socket.setTimeout(o.idleMs);
    }
  }
  return copied;
}
