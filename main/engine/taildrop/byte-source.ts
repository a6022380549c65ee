// Byte sources (protocol.ts ByteSource): a file the caller opened as itself, offered to the engine; and reading any
// source in order with a few reads in flight, for the body of an upload or the saving of a received file.
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { basename } from 'node:path';
import { type ByteSource, MAX_READ_BYTES } from '../protocol.ts';

/** A file that cannot be opened or read, in one sentence that names it. */
export class FileAccessError extends Error {
  override readonly name = 'FileAccessError';
}

/** A local file as a ByteSource, with its name; close it when done. */
export interface FileSource extends ByteSource {
  readonly name: string;
  /** The open file's descriptor (to hand to the daemon, fdpass/handover.ts); valid until close(). */
  readonly fd: number;
  close(): Promise<void>;
}

/** Opens path as this process's user (so the OS checks the caller's rights, not the daemon's). */
export async function openFileSource(path: string): Promise<FileSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw accessError(path, e);
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new FileAccessError(`${path} is not a file`);
  }
  return {
    name: basename(path),
    size: st.size,
    fd: fh.fd,
    async read(offset, length) {
      if (length > MAX_READ_BYTES) throw new RangeError(`a read is at most ${MAX_READ_BYTES} bytes`);
      const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, st.size - offset)));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === buf.length ? buf : buf.subarray(0, got);
    },
    close: () => fh.close(),
  };
}

/** The sentence for a failed open (or create: verb) of path. */
export function accessError(path: string, e: unknown, verb: 'open' | 'create' = 'open'): FileAccessError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return new FileAccessError(`cannot ${verb} ${path}: permission denied`);
  if (code === 'ENOENT') return new FileAccessError(`${path} does not exist`);
  if (code === 'ENOTDIR') return new FileAccessError(`${path}: a part of the path is not a folder`);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new FileAccessError(`no space left for ${path}`);
  return new FileAccessError(`cannot use ${path}: ${(e as Error).message}`);
}

/** Reads kept in flight: the next megabytes are on their way while one is written. */
export const READS_AHEAD = 3;

/** The source's bytes from start to its end, in MAX_READ_BYTES pieces; a short read means the file shrank. */
export async function* readAhead(source: ByteSource, start: number, depth = READS_AHEAD): AsyncGenerator<Uint8Array> {
  const inFlight: Array<{ length: number; bytes: Promise<Uint8Array> }> = [];
  let next = start;
  const refill = () => {
    while (inFlight.length < depth && next < source.size) {
      const length = Math.min(MAX_READ_BYTES, source.size - next);
      const bytes = source.read(next, length);
      bytes.catch(() => {}); // awaited below in order; an early failure must not be an unhandled rejection
      inFlight.push({ length, bytes });
      next += length;
    }
  };
  refill();
  for (let piece = inFlight.shift(); piece; piece = inFlight.shift()) {
    const bytes = await piece.bytes;
    if (bytes.length !== piece.length) throw new Error('the file changed while it was being read (it got shorter)');
    refill();
    yield bytes;
  }
}
