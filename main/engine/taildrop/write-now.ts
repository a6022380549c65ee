// Blocking writes for the PeerAPI's own thread (PeerApiOptions.blockingWrites): a batch of an upload written at
// its position with writev on this thread, short writes carried on, in the shape FileHandle.writev has.
import { writeSync, writevSync } from 'node:fs';

/** writev at a position, on this thread; a failure comes back as a rejected promise, as from FileHandle.writev. */
export function writeNow(fd: number, batch: Buffer[], at: number): Promise<void> {
  try {
    const total = batch.reduce((n, b) => n + b.length, 0);
    let done = writevSync(fd, batch, at);
    if (done < total) {
      // A short write (rare: a signal, a nearly full disk) goes on from where it stopped.
      const all = Buffer.concat(batch);
      while (done < total) {
        const n = writeSync(fd, all, done, total - done, at + done);
        if (n <= 0) throw Object.assign(new Error('the disk took no more bytes'), { code: 'ENOSPC' });
        done += n;
      }
    }
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}
