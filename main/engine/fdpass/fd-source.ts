// A ByteSource reading a descriptor this thread owns (passed by the client, or a copy of it) with
// positional reads, so the file's bytes never cross the daemon's socket or a thread's port. close() waits for
// reads in flight before it closes: a descriptor number closed under a pending read could be reused by the next
// open anywhere in the process, and the read would then return some other file's bytes.
import { read, readSync } from 'node:fs';
import { type ByteSource, MAX_READ_BYTES } from '../protocol.ts';
import { closeQuietly } from './handover.ts';

export class FdSource implements ByteSource {
  readonly readsOwned = true;
  #inFlight = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  /**
   * size: the most that is read (the size the client declared and the daemon bounded). blocking: read with blocking
   * calls on this thread rather than the thread pool — only on a thread of its own (the Taildrop send thread): the
   * pool's hand-off costs more CPU than a read of a local file from the page cache (the handover takes only files
   * on local filesystems).
   */
  constructor(
    readonly fd: number,
    readonly size: number,
    private readonly blocking = false,
  ) {}

  read(offset: number, length: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error('the file is closed'));
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      return Promise.reject(new RangeError(`bad read of ${length} bytes at ${offset}`));
    }
    if (length > MAX_READ_BYTES) return Promise.reject(new RangeError(`a read is at most ${MAX_READ_BYTES} bytes`));
    const want = Math.max(0, Math.min(length, this.size - offset));
    const p = this.#readFully(Buffer.allocUnsafeSlow(want), offset);
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  async #readFully(buf: Buffer, offset: number): Promise<Uint8Array> {
    let got = 0;
    while (got < buf.length) {
      const n = this.blocking
        ? readSync(this.fd, buf, got, buf.length - got, offset + got)
        : await new Promise<number>((resolve, reject) =>
            read(this.fd, buf, got, buf.length - got, offset + got, (e, bytesRead) =>
              e ? reject(e) : resolve(bytesRead),
            ),
          );
      if (n === 0) break;
      got += n;
    }
    return got === buf.length ? buf : buf.subarray(0, got);
  }

  /** Closes the descriptor once no read is pending; later reads fail. Safe to call more than once. */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      closeQuietly(this.fd);
    })();
    return this.#closing;
  }
}

/** The descriptor a source reads, when it is an FdSource (the send thread then reads a copy of it itself). */
export function sourceFd(source: ByteSource): number | undefined {
  return source instanceof FdSource ? source.fd : undefined;
}
