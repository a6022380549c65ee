// The Taildrop inbox in the state directory (docs/protocol/services.md §2.8): a file arrives as "<name>.<senderID>.partial"
// (0600) and is renamed to its name when complete — or, when that name is taken, deduplicated (same size and
// sha256: the partial is dropped) or given the next numbered name. Partials of failed transfers stay for resume.
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { invalidNameReason, numberedName } from './names.ts';

export const INBOX_DIR = 'taildrop';
/** Resume blocks (tailscaled: 64 KiB). */
export const BLOCK_SIZE = 64 * 1024;

export interface ReceivedFile {
  name: string;
  size: number;
  /** Unix ms of the last change. */
  modified: number;
}

const SENDER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A name that is not a received file's, or a sender id unfit for a file name. */
export class InboxError extends Error {
  override readonly name = 'InboxError';
}

export class Inbox {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, INBOX_DIR);
  }

  async ensure(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  partialPath(name: string, senderId: string): string {
    // The sender's id comes from the control server: it must not be able to lead the path out of the inbox.
    if (!SENDER_ID.test(senderId)) throw new InboxError(`unusable sender id ${JSON.stringify(senderId).slice(0, 80)}`);
    return path.join(this.dir, `${name}.${senderId}.partial`);
  }

  /** Size of the sender's partial for name, 0 when there is none. */
  async partialSize(name: string, senderId: string): Promise<number> {
    return stat(this.partialPath(name, senderId)).then(
      (s) => s.size,
      () => 0,
    );
  }

  /** sha256 of each 64 KiB block of the sender's partial, for a resuming sender. */
  async blockHashes(name: string, senderId: string): Promise<Array<{ checksum: string; size: number }>> {
    const out: Array<{ checksum: string; size: number }> = [];
    const f = this.partialPath(name, senderId);
    if (!(await stat(f).catch(() => undefined))) return out;
    let h = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(f, { highWaterMark: BLOCK_SIZE }) as AsyncIterable<Buffer>) {
      let rest = chunk;
      while (rest.length > 0) {
        const take = Math.min(rest.length, BLOCK_SIZE - size);
        h.update(rest.subarray(0, take));
        size += take;
        rest = rest.subarray(take);
        if (size === BLOCK_SIZE) {
          out.push({ checksum: h.digest('hex'), size });
          h = createHash('sha256');
          size = 0;
        }
      }
    }
    if (size > 0) out.push({ checksum: h.digest('hex'), size });
    return out;
  }

  /** Opens the sender's partial for writing from offset (which must not be past its end): truncated there. */
  async openPartial(name: string, senderId: string, offset: number) {
    await this.ensure();
    const f = this.partialPath(name, senderId);
    const have = await this.partialSize(name, senderId);
    if (offset > have) throw new RangeError(`resume offset ${offset} is past the ${have} bytes received`);
    // Never truncated to zero: on ext4 a file cut to zero and rewritten is flushed to disk when closed
    // (auto_da_alloc), which held the sender's answer ~100 ms per 200 MB. A fresh start is a new file instead.
    if (offset === 0) {
      await rm(f, { force: true });
      return open(f, 'w', 0o600);
    }
    const fh = await open(f, 'r+', 0o600);
    if (have > offset) await fh.truncate(offset);
    return fh;
  }

  /** Moves a complete partial to its final name; returns the name it got. */
  async finalize(name: string, senderId: string): Promise<string> {
    const partial = this.partialPath(name, senderId);
    const size = (await stat(partial)).size;
    for (let n = 0; n < 100; n++) {
      const candidate = n === 0 ? name : numberedName(name, n);
      const target = path.join(this.dir, candidate);
      const existing = await stat(target).catch(() => undefined);
      if (existing) {
        if (existing.size === size && (await sha256Of(target)) === (await sha256Of(partial))) {
          await rm(partial, { force: true }); // the same file again: keep the one we have
          return candidate;
        }
        continue;
      }
      try {
        await link(partial, target); // fails if the name was taken meanwhile, unlike rename
        await rm(partial, { force: true });
        return candidate;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        if ((e as NodeJS.ErrnoException).code === 'EPERM' || (e as NodeJS.ErrnoException).code === 'ENOTSUP') {
          await rename(partial, target); // no hard links here (some filesystems): plain rename
          return candidate;
        }
        throw e;
      }
    }
    throw new Error(`no free name for ${name} in the inbox`);
  }

  /** Removes partials nobody has written to for maxAgeMs (a sender that never came back to resume, as
   *  tailscaled does after an hour); the names removed. */
  async sweepPartials(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!name.endsWith('.partial')) continue;
      const file = path.join(this.dir, name);
      const s = await stat(file).catch(() => undefined);
      if (!s?.isFile() || now - s.mtimeMs < maxAgeMs) continue;
      await rm(file, { force: true });
      removed.push(name);
    }
    return removed;
  }

  /** Up to length bytes of the complete file name from offset (fewer at its end). */
  async read(name: string, offset: number, length: number): Promise<Uint8Array> {
    const fh = await open(this.completePath(name), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return bytesRead === length ? buf : buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** Removes the complete file name; false when it was not there. */
  async remove(name: string): Promise<boolean> {
    try {
      await unlink(this.completePath(name));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  /** The path of a complete file: only a name the inbox could hold (no partial, nothing outside the inbox). */
  private completePath(name: string): string {
    if (invalidNameReason(name) !== undefined) {
      throw new InboxError(`${JSON.stringify(name).slice(0, 80)} is not a received file`);
    }
    return path.join(this.dir, name);
  }

  /** Complete files, oldest first. */
  async list(): Promise<ReceivedFile[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out: ReceivedFile[] = [];
    for (const name of names) {
      if (name.endsWith('.partial') || name.endsWith('.deleted')) continue;
      const s = await stat(path.join(this.dir, name)).catch(() => undefined);
      if (s?.isFile()) out.push({ name, size: s.size, modified: s.mtimeMs });
    }
    return out.sort((a, b) => a.modified - b.modified);
  }
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest('hex');
}
