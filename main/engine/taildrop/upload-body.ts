// An upload's body into its partial file, for the PeerAPI (peerapi.ts): by splice(2) when it can (receive-splice.ts:
// the PeerAPI's own thread, a kernel socket, a declared length), else read from the request and written in batches.
// Either way the bytes on the disk before a failure stay there (the partial, for the sender's resume), and the
// disk is looked at again every few megabytes (checkpoint throws to refuse the rest).
import type { FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { spliceableSocket, spliceUpload } from './receive-splice.ts';
import { writeNow } from './write-now.ts';

/** During an upload the free space is checked again after each this many bytes. */
export const DISK_CHECK_BYTES = 4 << 20;
/** Bytes of an upload gathered before they are written (one batch written while the next is read). */
const WRITE_BATCH_BYTES = 1 << 20;

export interface UploadBody {
  req: IncomingMessage;
  fh: FileHandle;
  /** The file position of the body's first byte (a resume's offset). */
  offset: number;
  /** Content-Length, when the request had one. */
  declared: number | undefined;
  /** The PeerAPI's own thread: blocking writes, and splice. */
  blockingWrites: boolean;
  idleMs: number;
  /** Called with the bytes written so far every DISK_CHECK_BYTES or so; throws to stop. */
  checkpoint(copied: number): Promise<void>;
}

/** Writes the body; the bytes copied, and whether it went by splice (the connection must then close). Throws what
 *  checkpoint throws, or a write's error. Fewer bytes than declared: the sender cut the connection. */
export async function writeUploadBody(o: UploadBody): Promise<{ copied: number; spliced: boolean }> {
  const socket = o.blockingWrites ? spliceableSocket(o.req, o.declared) : undefined;
  if (socket && o.declared !== undefined) {
    const copied = await spliceUpload(socket, {
      req: o.req,
      fd: o.fh.fd,
      at: o.offset,
      length: o.declared,
      idleMs: o.idleMs,
      checkpoint: o.checkpoint,
    });
    return { copied, spliced: true };
  }
  return { copied: await readAndWrite(o), spliced: false };
}

async function readAndWrite(o: UploadBody): Promise<number> {
  const { req, fh, offset } = o;
  let copied = 0;
  // One write on its way to the disk at a time while the socket is read on: the chunks (64 KiB) that come
  // meanwhile are gathered and go in one writev when it is done, or sooner once they reach a batch's worth.
  // (A write per chunk, each awaited, would leave the socket unread during every one.)
  let writing: Promise<unknown> = Promise.resolve();
  let busy = false;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let written = 0;
  const startWrite = () => {
    const at = offset + written; // explicit position: r+ starts at 0
    busy = true;
    writing = (o.blockingWrites ? writeNow(fh.fd, batch, at) : fh.writev(batch, at)).finally(() => {
      busy = false;
    });
    writing.catch(() => {}); // awaited before the next batch or at the end: never an unhandled rejection
    written += batchBytes;
    batch = [];
    batchBytes = 0;
  };
  try {
    let checked = 0;
    // Not destroyed on a throw: the sender is still owed an answer.
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      batch.push(chunk);
      batchBytes += chunk.length;
      copied += chunk.length;
      if (busy && batchBytes >= WRITE_BATCH_BYTES) await writing; // a failed write throws here
      if (!busy) {
        await writing; // settled: throws if it failed
        startWrite();
      }
      if (copied - checked >= DISK_CHECK_BYTES) {
        checked = copied;
        await o.checkpoint(copied);
      }
    }
    await writing;
    if (batchBytes > 0) startWrite();
    await writing;
  } finally {
    // What came before a failure (a stall, a cut, the disk floor) is kept for the sender's resume.
    await writing.catch(() => {});
    if (batchBytes > 0) startWrite();
    await writing.catch(() => {});
  }
  return copied;
}
