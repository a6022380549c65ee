// Files dropped on the page live in the browser: `PUT /upload?name=…` streams one into a private temp directory
// (0700, files 0600), under the user's own file name so the peer receives it by that name, and answers with the
// path the page then passes to sendFiles. Uploaded files are removed once their sends are over.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ApiErrorCode, Transfer } from '../../preload/api.ts';
import { formatBytes } from '../shared/format.ts';

export const DEFAULT_UPLOAD_LIMIT = 16 * 1024 ** 3;
/** A file handed to sendFiles is kept this long after no send is queued or running (the snapshot may lag). */
const SENT_GRACE_MS = 10_000;
/** A file never handed to sendFiles (the page went away between upload and send) is removed after this. */
const ABANDONED_MS = 3600_000;
/** An upload that receives nothing for this long is cut. */
const IDLE_TIMEOUT_MS = 60_000;

class UploadError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Why a file name from the page is refused, or undefined when it is usable as it is. */
export function fileNameProblem(name: string | null): string | undefined {
  if (name === null || name === '') return 'The upload has no file name.';
  if (name === '.' || name === '..') return 'That is not a file name.';
  if (name.includes('/') || name.includes('\\')) return 'A file name may not contain / or \\.';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'A file name may not contain control characters.';
  if (Buffer.byteLength(name) > 255) return 'The file name is longer than 255 bytes.';
  return undefined;
}

interface Upload {
  path: string;
  created: number;
  /** When the page passed it to sendFiles. */
  handedOver?: number;
}

export class UploadStore {
  readonly #uploads = new Map<string, Upload>();
  #closed = false;

  private constructor(
    readonly dir: string,
    readonly limit: number,
  ) {}

  /** A fresh private directory under parent (default the OS temp directory). */
  static async create(opts: { parent?: string; limit?: number } = {}): Promise<UploadStore> {
    const dir = await mkdtemp(join(opts.parent ?? tmpdir(), 'trellis-web-'));
    await chmod(dir, 0o700);
    return new UploadStore(dir, opts.limit ?? DEFAULT_UPLOAD_LIMIT);
  }

  isUpload(path: string): boolean {
    return this.#uploads.has(path);
  }

  get paths(): string[] {
    return [...this.#uploads.keys()];
  }

  /** The page passed these to sendFiles; their cleanup clock starts. */
  handOver(paths: readonly string[], now = Date.now()): void {
    for (const p of paths) {
      const u = this.#uploads.get(p);
      if (u) u.handedOver = now;
    }
  }

  /** Removes uploads whose sends are over: handed over, no transfer queued or sending, and past the grace time;
   *  or never handed over for an hour. Transfers do not name their source path, hence "no send at all". */
  async sweep(transfers: readonly Transfer[], now = Date.now()): Promise<void> {
    const busy = transfers.some((t) => t.state === 'queued' || t.state === 'sending');
    const done = [...this.#uploads.values()].filter((u) =>
      u.handedOver !== undefined ? !busy && now - u.handedOver >= SENT_GRACE_MS : now - u.created >= ABANDONED_MS,
    );
    for (const u of done) this.#uploads.delete(u.path);
    await Promise.all(done.map((u) => rm(dirname(u.path), { recursive: true, force: true })));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#uploads.clear();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Answers PUT /upload (the caller checked Host and token): 201 {path}, or an error JSON {code, message}. */
  async receive(req: IncomingMessage, res: ServerResponse, name: string | null, headers: Record<string, string>) {
    try {
      const path = await this.#store(req, name);
      res.writeHead(201, { ...headers, 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify({ path }));
    } catch (e) {
      const err =
        e instanceof UploadError ? e : new UploadError(500, 'internal', `The upload failed: ${(e as Error).message}`);
      if (res.headersSent || res.destroyed) return;
      // The rest of a refused body is not read; closing the connection spares it being sent.
      res.writeHead(err.status, { ...headers, 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ code: err.code, message: err.message }));
    }
  }

  async #store(req: IncomingMessage, name: string | null): Promise<string> {
    const problem = fileNameProblem(name);
    if (problem || name === null) throw new UploadError(400, 'bad-request', problem ?? 'The upload has no file name.');
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > this.limit) throw this.#tooLarge(name);
    if (this.#closed) throw new UploadError(503, 'refused', 'trellis web is stopping.');

    const slot = join(this.dir, randomBytes(16).toString('hex'));
    const path = join(slot, name);
    await mkdir(slot, { mode: 0o700 });
    // Captured: a destroyed request lets go of its socket.
    const socket = req.socket;
    socket.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error('the upload stalled')));
    try {
      await pipeline(
        req,
        new ByteLimit(this.limit, () => this.#tooLarge(name)),
        createWriteStream(path, {
          flags: 'wx',
          mode: 0o600,
        }),
      );
    } catch (e) {
      await rm(slot, { recursive: true, force: true });
      if (e instanceof UploadError) throw e;
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
        const message = 'The disk of the machine running Trellis is full; free some space and try again.';
        throw new UploadError(507, 'refused', message);
      }
      throw e;
    } finally {
      socket.setTimeout(0);
    }
    if (this.#closed) {
      await rm(slot, { recursive: true, force: true });
      throw new UploadError(503, 'refused', 'trellis web is stopping.');
    }
    this.#uploads.set(path, { path, created: Date.now() });
    return path;
  }

  #tooLarge(name: string): UploadError {
    return new UploadError(
      413,
      'refused',
      `${name} is larger than the ${formatBytes(this.limit)} this page may upload.`,
    );
  }
}

/** Passes bytes through until more than limit have come (a body without Content-Length, or one that lies). */
class ByteLimit extends Transform {
  #seen = 0;

  constructor(
    private readonly limit: number,
    private readonly error: () => Error,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.limit) done(this.error());
    else done(null, chunk);
  }
}
